"""Classic vision, no model and no training data: the motion hints that say
which pixels move against the scene (motion), hard cuts between shots (cuts),
and where a clip dissolves or fades and by how much (dissolve)."""
