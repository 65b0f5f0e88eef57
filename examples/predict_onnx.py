# Names the class of each image given, with a model exported by
# `nas export TRIAL --format onnx` (onnxruntime, numpy and pillow):
#   python3 examples/predict_onnx.py my-fashion.onnx my-fashion/test/Bag/00001.png
import json, sys
import numpy as np, onnxruntime as ort
from PIL import Image

session = ort.InferenceSession(sys.argv[1])
names = json.loads(session.get_modelmeta().custom_metadata_map["nas.class_names"])
for path in sys.argv[2:]:
    pixels = np.asarray(Image.open(path), dtype=np.float32)[None, None]  # 1x1x28x28, raw 0-255
    logits = session.run(None, {"pixels": pixels})[0][0]
    print(f"{path}: {names[int(logits.argmax())]}")
