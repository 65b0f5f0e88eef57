# Submit a search, follow it, train its best architecture, and classify ten
# Fashion-MNIST test images with the downloaded ONNX model. Run it from the
# repository's root with a server up (`nas up`) after
# `pip install "./clients/python[pandas,progress,onnx]"`.
import gzip, json, os, numpy as np, onnxruntime as ort
from nas_client import Client

search = Client().submit("examples/quick.json").wait(progress=True)
print(search.leaderboard(top=5).to_pandas()[["rank", "trial_id", "accuracy", "latency_ms", "params", "blocks"]].to_string(index=False))
search.train_final(top_k=1, epochs=3).wait(progress=True)
model = ort.InferenceSession(str(search.final_models()[0].download_onnx("best.onnx")))
data = os.environ.get("NAS_DATA_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nas", "datasets")
images = np.frombuffer(gzip.open(data + "/fashion-mnist/t10k-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 1, 28, 28)[:10].astype(np.float32)
names = json.loads(model.get_modelmeta().custom_metadata_map["nas.class_names"])
print([names[i] for i in model.run(None, {"pixels": images})[0].argmax(1)])
