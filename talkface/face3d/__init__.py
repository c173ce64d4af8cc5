"""The 3D morphable face: coefficient layout, model, camera, lighting, synthetic model."""
