"""A pretrained face model beside the networks maskcls trains: dlib's detectors, its 5-point landmarks
and its ResNet face descriptor (128 numbers per face, trained for identity), computed once per photo
content and cached. ``detect`` finds the face, ``describe`` aligns and describes it, ``cache`` keeps the
results, ``compute`` runs them over a dataset, ``identity`` compares descriptors (same person or not)."""
