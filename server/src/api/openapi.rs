//! The OpenAPI 3 document, generated from the route annotations and the
//! schemas of the types they take and return.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{catalog, datasets, dto, events, finals, ops, searches, trials};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "nas",
        description = "Neural-architecture search for CNNs: submit searches, follow their trials, read leaderboards and Pareto fronts, download trained weights. Writes need `Authorization: Bearer <NAS_API_TOKEN>` when the server has a token; reads too when it has NAS_READ_TOKEN."
    ),
    paths(
        searches::create_search, searches::list_searches, searches::get_search, searches::cancel_search,
        searches::list_trials, searches::leaderboard, searches::pareto,
        finals::request_final, finals::final_models,
        trials::get_trial, trials::get_architecture, trials::get_weights, trials::get_onnx,
        catalog::zoo, catalog::zoo_entry, catalog::spaces, catalog::layer_kinds, catalog::datasets,
        datasets::upload, datasets::dataset, datasets::samples, datasets::remove,
        ops::healthz, ops::readyz, ops::workers, ops::metrics, events::events, openapi_json,
    ),
    components(schemas(dto::ErrorBody, store::Event)),
    modifiers(&BearerAuth, &SpecConstraints, &ClosedObjects),
    tags(
        (name = "searches", description = "Searches, their trials, leaderboards and Pareto fronts"),
        (name = "trials", description = "One trial: result, epochs, architecture, weights"),
        (name = "catalogue", description = "The datasets, the reference zoo, the preset search spaces and the layer kinds"),
        (name = "operations", description = "Health, workers, metrics, live events"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Optional: a server without tokens takes requests without one.
        openapi.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::default(),
            utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]);
    }
}

/// What `SearchSpec`'s derive cannot say: the catalogue's dataset names as
/// the `enum` of `dataset` and the zoo's as that of `baselines`' items (so
/// the document can never disagree with [`search::dataset::CATALOG`] or
/// [`search::zoo::ZOO`]), and the bounds `SearchSpec::check` puts on
/// `labels`.
struct SpecConstraints;

/// A label as `SearchSpec::check` takes it: not blank, no comma, no
/// control character.
const LABEL_PATTERN: &str =
    r"^[^,\x00-\x1f\x7f-\x9f]*[^,\s\x00-\x1f\x7f-\x9f][^,\x00-\x1f\x7f-\x9f]*$";

impl Modify for SpecConstraints {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Schema};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(spec))) = components.schemas.get_mut("SearchSpec") else {
            return;
        };
        if let Some(RefOr::T(Schema::Object(dataset))) = spec.properties.get_mut("dataset") {
            dataset.enum_values = Some(
                search::dataset::names()
                    .into_iter()
                    .map(serde_json::Value::from)
                    .collect(),
            );
        }
        if let Some(RefOr::T(Schema::Array(labels))) = spec.properties.get_mut("labels") {
            labels.max_items = Some(search::spec::bounds::MAX_LABELS);
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(item) = &mut labels.items {
                if let RefOr::T(Schema::Object(label)) = item.as_mut() {
                    label.pattern = Some(LABEL_PATTERN.into());
                    label.max_length = Some(search::spec::bounds::MAX_LABEL_CHARS);
                }
            }
        }
        if let Some(RefOr::T(Schema::Array(baselines))) = spec.properties.get_mut("baselines") {
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(item) = &mut baselines.items {
                if let RefOr::T(Schema::Object(name)) = item.as_mut() {
                    name.enum_values = Some(
                        search::zoo::names()
                            .into_iter()
                            .map(serde_json::Value::from)
                            .collect(),
                    );
                }
            }
        }
    }
}

/// Marks every object schema with properties as closed
/// (`additionalProperties: false`): the API's inputs refuse unknown fields
/// (`deny_unknown_fields`), and its outputs carry no field the document
/// does not name, so a client (or a fuzzer) is told the truth both ways.
/// Objects that say otherwise (maps) and the parts of an `allOf` are left
/// as they are.
struct ClosedObjects;

impl Modify for ClosedObjects {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        // A component that is part of an `allOf` (a flattened struct) must
        // stay open: the other parts' fields are "additional" to it.
        let mut in_all_of = std::collections::BTreeSet::new();
        for schema in components.schemas.values() {
            all_of_refs(schema, false, &mut in_all_of);
        }
        for (name, schema) in components.schemas.iter_mut() {
            if !in_all_of.contains(name) {
                close(schema);
            }
        }
    }
}

/// The component names `schema` refers to from inside an `allOf`.
fn all_of_refs(
    schema: &utoipa::openapi::RefOr<utoipa::openapi::Schema>,
    inside: bool,
    names: &mut std::collections::BTreeSet<String>,
) {
    use utoipa::openapi::schema::ArrayItems;
    use utoipa::openapi::{RefOr, Schema};
    match schema {
        RefOr::Ref(r) => {
            if inside {
                if let Some(name) = r.ref_location.rsplit('/').next() {
                    names.insert(name.to_owned());
                }
            }
        }
        RefOr::T(Schema::AllOf(all_of)) => {
            for item in &all_of.items {
                all_of_refs(item, true, names);
            }
        }
        RefOr::T(Schema::Object(object)) => {
            for property in object.properties.values() {
                all_of_refs(property, false, names);
            }
        }
        RefOr::T(Schema::Array(array)) => {
            if let ArrayItems::RefOrSchema(items) = &array.items {
                all_of_refs(items, false, names);
            }
        }
        RefOr::T(Schema::OneOf(one_of)) => {
            for item in &one_of.items {
                all_of_refs(item, false, names);
            }
        }
        RefOr::T(Schema::AnyOf(any_of)) => {
            for item in &any_of.items {
                all_of_refs(item, false, names);
            }
        }
        RefOr::T(_) => {}
    }
}

fn close(schema: &mut utoipa::openapi::RefOr<utoipa::openapi::Schema>) {
    use utoipa::openapi::schema::{AdditionalProperties, ArrayItems};
    use utoipa::openapi::{RefOr, Schema};
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(object) => {
            // A tagged enum's unit variant (`{"kind": "constant"}`): serde
            // ignores other fields there, so the document must too.
            let unit_variant = object.properties.len() == 1
                && object.properties.values().all(|p| {
                    matches!(p, RefOr::T(Schema::Object(tag))
                        if tag.enum_values.as_ref().is_some_and(|v| v.len() == 1))
                });
            if !object.properties.is_empty()
                && object.additional_properties.is_none()
                && !unit_variant
            {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
            for property in object.properties.values_mut() {
                close(property);
            }
        }
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                close(items);
            }
        }
        Schema::OneOf(one_of) => one_of.items.iter_mut().for_each(close),
        Schema::AnyOf(any_of) => any_of.items.iter_mut().for_each(close),
        _ => {}
    }
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
