"""`ddip-video fgbg`: separate a clip's moving foreground from its background.

options.py   its options and per-device defaults (no torch: the CLI reads them)
model.py     the panorama background, the foreground and mask nets, the loss terms
separate.py  from the frames to masks and background: the motion hints
             (ddip_video.analysis.motion), then the engine (ddip_video.fit)
outputs.py   the layers at full size, preview.png; the whole job
cli.py       its flags and summary line
"""
