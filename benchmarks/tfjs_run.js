// Runs a TF.js graph model with TensorFlow.js's own runtime (used by record_tfjs_vectors.py).
// node tfjs_run.js MODEL.json INPUT.bin D0,D1,... OUTPUT_PREFIX
//   INPUT.bin: float32 values of the model's input, in the shape D0,D1,...
//   writes OUTPUT_PREFIX<k>.bin (float32) per output of the model's signature, in its order,
//   and prints each output's name and shape.
const tf = require('@tensorflow/tfjs');
const fs = require('fs');
const path = require('path');

async function main() {
  const [modelPath, inputPath, shapeText, outPrefix] = process.argv.slice(2);
  const json = JSON.parse(fs.readFileSync(modelPath));
  const folder = path.dirname(modelPath);
  const specs = [];
  const shards = [];
  for (const group of json.weightsManifest) {
    for (const shard of group.paths) shards.push(fs.readFileSync(path.join(folder, shard)));
    specs.push(...group.weights);
  }
  const all = Buffer.concat(shards);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const model = await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: json.modelTopology, weightSpecs: specs, weightData, format: json.format, signature: json.signature,
  }));
  const raw = fs.readFileSync(inputPath);
  const values = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const input = tf.tensor(values, shapeText.split(',').map(Number));
  const names = Object.keys(json.signature.outputs);
  const outputs = await model.executeAsync(input, names);
  names.forEach((name, k) => {
    fs.writeFileSync(`${outPrefix}${k}.bin`, Buffer.from(outputs[k].dataSync().buffer));
    console.log(name, JSON.stringify(outputs[k].shape));
  });
}

main();
