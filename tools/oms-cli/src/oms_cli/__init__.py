"""oms: the operators command line."""
