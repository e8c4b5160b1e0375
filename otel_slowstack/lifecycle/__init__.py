"""The process around the spans: exit, signals, forks, servers' hooks, interrupts."""
