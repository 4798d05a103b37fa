"""Analyses behind the results: measurements that explain a figure rather than produce one."""
