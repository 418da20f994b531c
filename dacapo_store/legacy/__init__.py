"""Reading what DaCapo 0.3 wrote, where DaCapo keeps it: checkpoints, stats, best files; import-dacapo.

Read-only: nothing here writes into DaCapo's files or collections.
"""
