"""One module per DAG stage, each importing only what its stage runs, so a rule can depend on exactly
the code it executes (see medprobe.codedeps)."""
