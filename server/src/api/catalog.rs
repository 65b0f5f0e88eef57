//! Catalogue routes: the reference zoo and the preset search spaces.

use std::collections::BTreeMap;

use axum::Json;

use super::dto::{SpaceList, ZooEntryView, ZooList};
use super::{ApiError, ApiResult};

/// `GET /zoo`: the reference architectures with params and MACs at their
/// published input.
#[utoipa::path(get, path = "/api/v1/zoo", tag = "catalogue",
    responses((status = 200, body = ZooList), (status = 401, body = super::dto::ErrorBody)))]
pub async fn zoo() -> ApiResult<Json<ZooList>> {
    let mut zoo = Vec::new();
    for e in search::zoo::ZOO {
        let arch = e
            .build(e.published_input, e.published_classes, 1.0)
            .map_err(ApiError::internal)?;
        let report = search::validate(&arch).map_err(ApiError::internal)?;
        let input = e.published_input;
        zoo.push(ZooEntryView {
            name: e.name.to_owned(),
            title: e.title.to_owned(),
            input: [input.channels, input.height, input.width],
            classes: e.published_classes,
            params: report.params,
            macs: report.macs,
        });
    }
    Ok(Json(ZooList { zoo }))
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
