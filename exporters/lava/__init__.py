"""Our ``.loihi`` process graph as a graph of Lava processes, run in Lava's bit-accurate CPU models
(``Loihi2SimCfg(select_tag='fixed_pt')``) and compared spike for spike with ``hw_sim.executor``.
Conventions and how each is bridged: ``SEMANTICS.md``."""
