"""hw_sim: chip descriptions, core mapping, the integer event-driven executor, cycle and energy accounting."""
