"""`ddip-video transition`: unmix a dissolve, a fade or a dip into its two shots.

options.py  its options and per-device defaults (no torch: the CLI reads them)
model.py    the two shots' nets, the curve alpha_t, the loss terms
unmix.py    from the frames to the shots and the curve: the classic analysis
            (ddip_video.analysis.dissolve) locates the transition, the engine
            (ddip_video.fit) fits the model there
outputs.py  the shots at full size, alpha.csv, alpha.png, preview.png; the whole job
cli.py      its flags and summary line
"""
