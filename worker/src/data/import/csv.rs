//! CSV in the Kaggle MNIST / Fashion-MNIST layout: a header row, a label
//! column (chosen by name), and one column per pixel (0–255, a square
//! grayscale image), one image per row.

use search::InputShape;

use super::ImportError;

/// The images (one channel, square) and raw labels of a CSV file.
pub(super) fn read(
    text: &str,
    label_column: &str,
    max_images: usize,
) -> Result<(InputShape, Vec<u8>, Vec<String>), ImportError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or(ImportError::Empty)?;
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let label_at = columns
        .iter()
        .position(|c| *c == label_column)
        .ok_or_else(|| ImportError::Field {
            field: "label_column".into(),
            reason: format!(
                "the CSV has no column `{label_column}` (its header starts {:?})",
                columns.iter().take(5).collect::<Vec<_>>()
            ),
        })?;
    let pixels_per_row = columns.len() - 1;
    let side = (pixels_per_row as f64).sqrt().round() as usize;
    if side == 0 || side * side != pixels_per_row {
        return Err(ImportError::Format(format!(
            "a CSV image is a square of pixel columns: {pixels_per_row} pixel columns is not a square"
        )));
    }
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (line, row) in lines {
        let row_number = line + 1;
        if labels.len() >= max_images {
            return Err(ImportError::Bound {
                what: "images".into(),
                limit: max_images as u64,
            });
        }
        let cells: Vec<&str> = row.split(',').map(str::trim).collect();
        if cells.len() != columns.len() {
            return Err(ImportError::Row {
                row: row_number,
                column: None,
                reason: format!("{} columns, the header has {}", cells.len(), columns.len()),
            });
        }
        for (i, cell) in cells.iter().enumerate() {
            if i == label_at {
                if cell.is_empty() {
                    return Err(ImportError::Row {
                        row: row_number,
                        column: Some(columns[i].to_owned()),
                        reason: "an empty label".into(),
                    });
                }
                labels.push((*cell).to_owned());
                continue;
            }
            let value = cell.parse::<u8>().map_err(|_| ImportError::Row {
                row: row_number,
                column: Some(columns[i].to_owned()),
                reason: format!("`{cell}` is not a pixel value 0 to 255"),
            })?;
            pixels.push(value);
        }
    }
    if labels.is_empty() {
        return Err(ImportError::Empty);
    }
    Ok((InputShape::new(1, side, side), pixels, labels))
}
