"""SANA-FE export: our process graph and placement as a network for SANA-FE's Loihi model (PyPI ``sanafe``).

``network.build_network`` writes the network through SANA-FE's Python API onto its bundled, unmodified
``loihi.yaml`` architecture; ``run.simulate_sanafe`` runs it; ``tiny_cnn`` is the small binary CNN
both simulators compute identically (``bench/vs_sanafe.py`` compares them term by term). ``sanafe`` is
an optional dependency (``pip install .[sanafe]``): nothing here imports it until a network is built.
"""
