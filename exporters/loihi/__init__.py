"""The Loihi target: NIR graph -> integer process graph -> core mapping -> artifact."""
