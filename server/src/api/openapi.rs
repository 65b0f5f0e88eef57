//! The OpenAPI 3 document, generated from the route annotations and the
//! schemas of the types they take and return.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{catalog, dto, events, finals, ops, searches, trials};

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
        catalog::zoo, catalog::zoo_entry, catalog::spaces, catalog::datasets,
        ops::healthz, ops::readyz, ops::workers, ops::metrics, events::events, openapi_json,
    ),
    components(schemas(dto::ErrorBody, store::Event)),
    modifiers(&BearerAuth, &DatasetNames),
    tags(
        (name = "searches", description = "Searches, their trials, leaderboards and Pareto fronts"),
        (name = "trials", description = "One trial: result, epochs, architecture, weights"),
        (name = "catalogue", description = "The datasets, the reference zoo and the preset search spaces"),
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

/// Lists the catalogue's dataset names as the `enum` of `SearchSpec.dataset`,
/// so the document can never disagree with [`search::dataset::CATALOG`].
struct DatasetNames;

impl Modify for DatasetNames {
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
    }
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
