//! Image folders: one sub-folder per class holding PNG or JPEG files,
//! optionally under `train/` and `test/`.

use std::path::{Path, PathBuf};

use search::InputShape;

use super::{DataError, Dataset, Split};

/// An image folder's data and its class names (the sub-folder names, sorted;
/// label `i` is `class_names[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFolder {
    /// Training and test images (test is empty without a `test/` folder).
    pub split: Split,
    /// Class names in label order.
    pub class_names: Vec<String>,
}

fn io(file: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        file: file.to_owned(),
        source,
    }
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| io(dir, err)))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    Ok(entries)
}

/// Class folders under `dir`, sorted by name.
fn class_dirs(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect())
}

/// Reads a class-per-folder tree. `shape` fixes the image size and channels
/// (from the first image when `None`); `classes` fixes the class names.
fn read_tree(
    dir: &Path,
    classes: &[String],
    shape: &mut Option<InputShape>,
) -> Result<Dataset, DataError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let class_dir = dir.join(class);
        if !class_dir.is_dir() {
            continue;
        }
        for file in sorted_entries(&class_dir)?
            .into_iter()
            .filter(|p| is_image(p))
        {
            let corrupt = |reason: String| DataError::Corrupt {
                file: file.clone(),
                offset: 0,
                reason,
            };
            let bytes = std::fs::read(&file).map_err(|e| io(&file, e))?;
            let image = image::load_from_memory(&bytes)
                .map_err(|e| corrupt(format!("cannot decode image: {e}")))?;
            let grey = !image.color().has_color();
            let want = *shape.get_or_insert(InputShape::new(
                if grey { 1 } else { 3 },
                image.height() as usize,
                image.width() as usize,
            ));
            if (image.height() as usize, image.width() as usize) != (want.height, want.width) {
                return Err(corrupt(format!(
                    "image is {}x{} but the folder's images are {}x{}; resize them to one size",
                    image.height(),
                    image.width(),
                    want.height,
                    want.width
                )));
            }
            if want.channels == 1 {
                pixels.extend_from_slice(image.to_luma8().as_raw());
            } else {
                // Interleaved RGB to channel-major planes.
                let rgb = image.to_rgb8();
                for c in 0..3 {
                    pixels.extend(rgb.as_raw().iter().skip(c).step_by(3));
                }
            }
            labels.push(u8::try_from(label).map_err(|_| corrupt("more than 256 classes".into()))?);
        }
    }
    let shape = shape.ok_or_else(|| DataError::Missing {
        dir: dir.to_owned(),
        tried: "*.png, *.jpg, *.jpeg in class folders".into(),
    })?;
    Ok(Dataset {
        shape,
        classes: classes.len(),
        pixels,
        labels,
    })
}

/// Loads an image folder: `dir/train/<class>/*.png|jpg` and
/// `dir/test/<class>/...`, or `dir/<class>/...` (no test set). Every image
/// must have the size of the first; the images are greyscale (1 channel)
/// if the first is, else RGB.
pub fn load_image_folder(dir: &Path) -> Result<ImageFolder, DataError> {
    let train_dir = if dir.join("train").is_dir() {
        dir.join("train")
    } else {
        dir.to_owned()
    };
    let class_names: Vec<String> = class_dirs(&train_dir)?
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    if class_names.is_empty() {
        return Err(DataError::Missing {
            dir: train_dir,
            tried: "one sub-folder per class".into(),
        });
    }
    let mut shape = None;
    let train = read_tree(&train_dir, &class_names, &mut shape)?;
    let test_dir = dir.join("test");
    let test = if test_dir.is_dir() && train_dir != *dir {
        read_tree(&test_dir, &class_names, &mut shape)?
    } else {
        Dataset {
            shape: train.shape,
            classes: train.classes,
            pixels: Vec::new(),
            labels: Vec::new(),
        }
    };
    Ok(ImageFolder {
        split: Split { train, test },
        class_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nas-folder-{tag}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        dir
    }

    fn write_rgb(path: &Path, w: u32, h: u32, base: u8) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([base, x as u8, y as u8]));
        img.save(path).expect("save");
    }

    #[test]
    fn reads_classes_train_and_test_with_channel_major_pixels() {
        let dir = temp("ok");
        write_rgb(&dir.join("train/cat/a.png"), 4, 3, 10);
        write_rgb(&dir.join("train/cat/b.png"), 4, 3, 11);
        write_rgb(&dir.join("train/dog/c.jpg"), 4, 3, 200);
        write_rgb(&dir.join("test/dog/d.png"), 4, 3, 12);
        let folder = load_image_folder(&dir).expect("loads");
        assert_eq!(folder.class_names, ["cat", "dog"]);
        let train = &folder.split.train;
        assert_eq!((train.len(), train.shape), (3, InputShape::new(3, 3, 4)));
        assert_eq!(train.labels, [0, 0, 1]);
        assert_eq!(folder.split.test.labels, [1]);
        // Red plane first (all `base`), then green (x), then blue (y).
        let first = train.image(0);
        assert!(first[..12].iter().all(|&v| v == 10));
        assert_eq!(&first[12..16], &[0, 1, 2, 3]);
        assert_eq!(&first[24..28], &[0, 0, 0, 0]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_images_name_the_file() {
        let dir = temp("bad");
        write_rgb(&dir.join("a/1.png"), 4, 4, 1);
        write_rgb(&dir.join("b/2.png"), 5, 4, 1);
        let err = load_image_folder(&dir).expect_err("size").to_string();
        assert!(err.contains("2.png") && err.contains("4x5 but"), "{err}");
        std::fs::write(dir.join("b/2.png"), b"not a png").expect("write");
        let err = load_image_folder(&dir).expect_err("decode").to_string();
        assert!(
            err.contains("2.png") && err.contains("cannot decode"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
