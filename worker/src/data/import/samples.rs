//! A PNG grid of sample images: one row per class (in label order), the
//! first images of that class in the training split, so people can see at
//! a glance that an upload holds what they meant (labels the right way
//! round, colours, orientation). Rendered once, at upload.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};

use crate::data::Dataset;

use super::{CanonicalDataset, ImportError};

/// Images shown per class.
pub const SAMPLES_PER_CLASS: usize = 8;

/// Most classes drawn (rows); a dataset with more shows its first ones.
pub const MAX_ROWS: usize = 100;

/// Side of a cell, pixels: small images are scaled up to it, large ones
/// down (aspect kept).
const CELL: u32 = 48;

/// Gap between cells, pixels.
const GAP: u32 = 2;

/// The sample grid of `dataset` as PNG bytes.
pub fn sample_grid(dataset: &CanonicalDataset) -> Result<Vec<u8>, ImportError> {
    let train = &dataset.split.train;
    let rows = dataset.class_names.len().clamp(1, MAX_ROWS);
    let shape = train.shape;
    let scale = f64::from(CELL) / shape.height.max(shape.width) as f64;
    let (cell_w, cell_h) = (
        ((shape.width as f64 * scale).round() as u32).max(1),
        ((shape.height as f64 * scale).round() as u32).max(1),
    );
    let width = SAMPLES_PER_CLASS as u32 * (cell_w + GAP) + GAP;
    let height = rows as u32 * (cell_h + GAP) + GAP;
    let mut grid = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    let mut placed = vec![0usize; rows];
    for index in 0..train.len() {
        let class = usize::from(train.labels[index]);
        if class >= rows || placed[class] >= SAMPLES_PER_CLASS {
            continue;
        }
        let cell = cell_image(train, index).resize_exact(cell_w, cell_h, FilterType::Nearest);
        let (x, y) = (
            GAP + placed[class] as u32 * (cell_w + GAP),
            GAP + class as u32 * (cell_h + GAP),
        );
        image::imageops::overlay(&mut grid, &cell.to_rgb8(), i64::from(x), i64::from(y));
        placed[class] += 1;
        if placed.iter().all(|&n| n >= SAMPLES_PER_CLASS) {
            break;
        }
    }
    let mut png = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(grid)
        .write_to(&mut png, ImageFormat::Png)
        .map_err(|e| ImportError::Format(format!("drawing the sample grid: {e}")))?;
    Ok(png.into_inner())
}

/// Image `index` of `data` (channel-major bytes) as an image.
fn cell_image(data: &Dataset, index: usize) -> DynamicImage {
    let shape = data.shape;
    let (w, h) = (shape.width as u32, shape.height as u32);
    let pixels = data.image(index);
    let plane = shape.height * shape.width;
    if shape.channels >= 3 {
        let mut rgb = RgbImage::new(w, h);
        for (i, p) in rgb.pixels_mut().enumerate() {
            *p = image::Rgb([pixels[i], pixels[plane + i], pixels[2 * plane + i]]);
        }
        DynamicImage::ImageRgb8(rgb)
    } else {
        let grey = GrayImage::from_raw(w, h, pixels[..plane].to_vec())
            .unwrap_or_else(|| GrayImage::new(w, h));
        DynamicImage::ImageLuma8(grey)
    }
}
