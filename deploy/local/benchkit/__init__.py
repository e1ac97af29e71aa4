"""The parts of deploy/local/bench.py, one concern per module: CPU and memory from /proc, percentiles,
Kafka offsets and the raw client ceiling, the processes a run starts, the load it places, and the
invariants it checks afterwards."""
