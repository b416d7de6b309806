"""Where the `:fsdd` and `:jsb` variants of every config find their data (not a config itself).

Paths are relative to the directory the commands run from (the repository root); edit them here to
point every config at another copy, or override one run with --config.data.path=...
"""

FSDD = "../shared/data/fsdd"                    # Free Spoken Digit Dataset: a directory of WAVs
JSB = "../shared/data/jsb/JSB_Chorales.mat"     # JSB Chorales piano-rolls (Boulanger-Lewandowski)
