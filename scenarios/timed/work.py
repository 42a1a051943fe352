# Asleep for 2 s: the CPU-time test's baseline (tests/engine_durations.rs). timed.toml swaps this file.
import time

time.sleep(2)
