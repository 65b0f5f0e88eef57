//! Catalogue routes: the datasets, the reference zoo and the preset search spaces.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;

use search::arch::LayerKind;

use super::dto::{
    DatasetList, LayerKindList, LayerKindView, SpaceList, ZooDetail, ZooEntryView, ZooList,
};
use super::{ApiError, ApiResult, AppState};

/// `GET /zoo`: the reference architectures with params and MACs at their
/// published input.
#[utoipa::path(get, path = "/api/v1/zoo", tag = "catalogue",
    responses((status = 200, body = ZooList), (status = 401, body = super::dto::ErrorBody)))]
pub async fn zoo() -> ApiResult<Json<ZooList>> {
    let zoo = search::zoo::ZOO
        .iter()
        .map(|e| Ok(entry(e)?.0))
        .collect::<ApiResult<_>>()?;
    Ok(Json(ZooList { zoo }))
}

fn entry(e: &search::zoo::ZooEntry) -> ApiResult<(ZooEntryView, search::Architecture)> {
    let arch = e
        .build(e.published_input, e.published_classes, 1.0)
        .map_err(ApiError::internal)?;
    let report = search::validate(&arch).map_err(ApiError::internal)?;
    let input = e.published_input;
    Ok((
        ZooEntryView {
            name: e.name.to_owned(),
            title: e.title.to_owned(),
            input: [input.channels, input.height, input.width],
            classes: e.published_classes,
            params: report.params,
            macs: report.macs,
        },
        arch,
    ))
}

/// `GET /zoo/{name}`: one reference architecture with its layers.
#[utoipa::path(get, path = "/api/v1/zoo/{name}", tag = "catalogue",
    params(("name" = String, Path, description = "Zoo entry, e.g. resnet18")),
    responses((status = 200, body = ZooDetail), (status = 401, body = super::dto::ErrorBody),
        (status = 404, body = super::dto::ErrorBody)))]
pub async fn zoo_entry(Path(name): Path<String>) -> ApiResult<Json<ZooDetail>> {
    let e = search::zoo::ZOO
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| ApiError::not_found(format!("zoo entry `{name}`")))?;
    let (entry, arch) = entry(e)?;
    Ok(Json(ZooDetail {
        entry,
        layers: super::dto::layers_of(&arch)?,
        architecture: serde_json::to_value(&arch).map_err(ApiError::internal)?,
    }))
}

/// `GET /layer-kinds`: every layer kind of the architecture JSON, with the
/// colour the dashboard draws it in (the dashboard keeps no list of its
/// own).
#[utoipa::path(get, path = "/api/v1/layer-kinds", tag = "catalogue",
    responses((status = 200, body = LayerKindList), (status = 401, body = super::dto::ErrorBody)))]
pub async fn layer_kinds() -> Json<LayerKindList> {
    Json(LayerKindList {
        kinds: LayerKind::ALL
            .iter()
            .map(|&kind| LayerKindView {
                kind: kind.name().to_owned(),
                composite: matches!(kind, LayerKind::Residual | LayerKind::Branches),
                colour: colour(kind).to_owned(),
            })
            .collect(),
    })
}

/// A layer kind's fill in the architecture diagram: convolutions blue,
/// separable green, pooling sand, dense violet, SE rose, the rest grey (a
/// new kind must be given one here: the match is exhaustive).
fn colour(kind: LayerKind) -> &'static str {
    match kind {
        LayerKind::Conv => "#dbe8f6",
        LayerKind::SeparableConv => "#d6efe7",
        LayerKind::Pool | LayerKind::GlobalAvgPool => "#f4e6cc",
        LayerKind::Dense => "#e7dcf3",
        LayerKind::Se => "#fbe0e0",
        LayerKind::Residual | LayerKind::Branches => "#ffffff",
        LayerKind::Flatten | LayerKind::Dropout | LayerKind::Activation | LayerKind::Lrn => {
            "#eceff3"
        }
    }
}

/// `GET /spaces`: the preset search spaces (a starting point for your own).
#[utoipa::path(get, path = "/api/v1/spaces", tag = "catalogue",
    responses((status = 200, body = SpaceList), (status = 401, body = super::dto::ErrorBody)))]
pub async fn spaces() -> ApiResult<Json<SpaceList>> {
    let mut presets = BTreeMap::new();
    for name in search::space::PRESETS {
        let space = search::SearchSpace::preset(name).map_err(ApiError::internal)?;
        presets.insert((*name).to_owned(), space);
    }
    Ok(Json(SpaceList { presets }))
}

/// `GET /datasets`: the datasets a search may name: the built-in ones with
/// their input shape, classes, split sizes and canonical source, and the
/// uploaded ones with their classes and images per split and class.
#[utoipa::path(get, path = "/api/v1/datasets", tag = "catalogue",
    responses((status = 200, body = DatasetList), (status = 401, body = super::dto::ErrorBody)))]
pub async fn datasets(State(state): State<AppState>) -> ApiResult<Json<DatasetList>> {
    Ok(Json(DatasetList {
        datasets: search::dataset::CATALOG.to_vec(),
        uploaded: state.store.datasets().await?,
    }))
}
