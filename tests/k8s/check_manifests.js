// Checks Kubernetes objects against the API's schemas, with the npm package
// kubernetes-models (installed by scripts/setup.sh):
//  1. its validate(): types, formats, required fields, enums;
//  2. TypeScript's excess-property check against its interfaces (tsc --strict):
//     validate() lets unknown fields through; a misspelt field is not.
// Usage: node check_manifests.js OBJECTS.json WORKDIR
// OBJECTS.json: [{"source": "...", "object": {...}}, ...]. Prints one JSON
// report: {"validate": [{source, errors}], "typecheck": "<tsc output>", "tsc_status": N}.
"use strict";
const fs = require("fs");
const path = require("path");
const childProcess = require("child_process");

const [objectsPath, workdir] = process.argv.slice(2);
const items = JSON.parse(fs.readFileSync(objectsPath, "utf8"));

function modulePath(apiVersion, kind) {
  // "v1" -> v1/Kind; "apps/v1" -> apps/v1/Kind
  return "kubernetes-models/" + apiVersion + "/" + kind;
}

const validate = [];
const lines = [];
items.forEach((item, i) => {
  const { apiVersion, kind } = item.object;
  let Model;
  try {
    Model = require(modulePath(apiVersion, kind))[kind];
  } catch (e) {
    validate.push({ source: item.source, errors: ["no schema for " + apiVersion + " " + kind] });
    return;
  }
  try {
    new Model(item.object).validate();
    validate.push({ source: item.source, errors: [] });
  } catch (e) {
    validate.push({ source: item.source, errors: [String(e.message || e)] });
  }
  const root = require.resolve("kubernetes-models/package.json").replace(/package\.json$/, "");
  const typesFile = path.join(root, apiVersion, kind);
  lines.push("import type { I" + kind + " as T" + i + " } from " + JSON.stringify(typesFile) + ";");
  lines.push("// " + item.source);
  lines.push("export const o" + i + ": T" + i + " = " + JSON.stringify(item.object, null, 1) + ";");
});
const tsFile = path.join(workdir, "manifests.ts");
fs.writeFileSync(tsFile, lines.join("\n") + "\n");
// tsc from the same global node_modules (NODE_PATH), whatever PATH holds.
const tsc = childProcess.spawnSync(
  process.execPath, [require.resolve("typescript/bin/tsc"), "--noEmit", "--strict", "--skipLibCheck", "--target", "es2019", "--moduleResolution", "node", tsFile],
  { encoding: "utf8" });
process.stdout.write(JSON.stringify({
  validate,
  typecheck: (tsc.stdout || "") + (tsc.stderr || "") + (tsc.error ? String(tsc.error) : ""),
  tsc_status: tsc.status === null ? -1 : tsc.status,
}));
