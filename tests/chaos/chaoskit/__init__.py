"""The chaos suite's parts: an upstream client that places orders as a real one would (upstream), the
faults (faults), the invariants checked afterwards from the APIs and topics (checks) and the services'
ERROR lines counted (logscan). The system itself is deploy/local/benchkit's."""
