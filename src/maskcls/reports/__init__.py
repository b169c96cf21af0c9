"""Reports: figures written into run folders."""
