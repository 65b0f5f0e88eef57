//! Image folders from an archive, in torchvision's `ImageFolder` layout:
//! `class/*.png|jpg|jpeg`, or `train/class/...` and `test/class/...`, with
//! one wrapping folder looked through. Class names are the sorted folder
//! names (label `i` is the `i`-th). Files that are not images are skipped
//! and counted; an image that does not decode is an error naming it.

use std::collections::BTreeSet;
use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader, Limits};
use search::InputShape;

use super::archive::Entry;
use super::{ImportError, ImportOptions};

/// The decoded images of one split: channel-major pixels and labels.
#[derive(Debug, Default)]
pub(super) struct Decoded {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

/// What an image folder decodes to.
#[derive(Debug)]
pub(super) struct Folder {
    pub shape: InputShape,
    pub class_names: Vec<String>,
    pub train: Decoded,
    /// `None` without a `test/` folder.
    pub test: Option<Decoded>,
    /// Files that are not PNG or JPEG images, passed over.
    pub skipped: usize,
}

fn is_image(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".png") || lower.ends_with(".jpg") || lower.ends_with(".jpeg")
}

/// Entry names split into components, with one folder that wraps
/// everything removed.
fn parts(entries: &[Entry]) -> Vec<Vec<&str>> {
    let mut parts: Vec<Vec<&str>> = entries
        .iter()
        .map(|e| e.name.split('/').filter(|p| !p.is_empty()).collect())
        .collect();
    // A wrapper: every entry sits under it, and some entry two folders
    // deeper (`pets/cat/1.png`; `cat/1.png` alone is a class, not one).
    let wrapper = parts.first().and_then(|p| (p.len() > 1).then(|| p[0]));
    if let Some(wrapper) = wrapper {
        if parts.iter().all(|p| p.len() > 1 && p[0] == wrapper) && parts.iter().any(|p| p.len() > 2)
        {
            for p in &mut parts {
                p.remove(0);
            }
        }
    }
    parts
}

/// Decodes one image within the limits.
fn decode(name: &str, bytes: &[u8], max_side: u32) -> Result<DynamicImage, ImportError> {
    let broken = |reason: String| ImportError::Entry {
        entry: name.to_owned(),
        reason,
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| broken(format!("cannot be read: {e}")))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(u64::from(max_side) * u64::from(max_side) * 4 + (1 << 20));
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| broken(format!("not a readable PNG or JPEG image: {e}")))
}

/// The image entries of a folder, each with its split (0 train, 1 test)
/// and class, and how many entries are not images in place.
fn place<'e>(
    entries: &'e [Entry],
    parts: &'e [Vec<&'e str>],
) -> (Vec<(&'e Entry, usize, &'e str)>, usize) {
    let split_layout = parts
        .iter()
        .any(|p| p.len() == 3 && p[0] == "train" && is_image(p[2]));
    let mut images = Vec::new();
    let mut skipped = 0;
    for (entry, p) in entries.iter().zip(parts) {
        let placed = match (split_layout, p.as_slice()) {
            (true, ["train", class, file]) if is_image(file) => Some((0, *class)),
            (true, ["test" | "val", class, file]) if is_image(file) => Some((1, *class)),
            (false, [class, file]) if is_image(file) => Some((0, *class)),
            _ => None,
        };
        match placed {
            Some((split, class)) => images.push((entry, split, class)),
            None => skipped += 1,
        }
    }
    (images, skipped)
}

/// Reads an image folder from `entries`.
pub(super) fn read(entries: &[Entry], options: &ImportOptions) -> Result<Folder, ImportError> {
    let parts = parts(entries);
    // (entry, split: 0 train / 1 test, class)
    let (images, skipped) = place(entries, &parts);
    if images.is_empty() {
        return Err(ImportError::Format(
            "no images found: expected class/*.png|jpg|jpeg or train/class/... and test/class/..."
                .into(),
        ));
    }
    let class_names: Vec<String> = images
        .iter()
        .filter(|(_, split, _)| *split == 0)
        .map(|(_, _, class)| (*class).to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    check_counts(class_names.len(), images.len(), options)?;
    let mut shape: Option<(InputShape, String)> = None;
    let mut train = Decoded::default();
    let mut test = Decoded::default();
    let mut has_test = false;
    for (entry, split, class) in images {
        let label =
            class_names
                .iter()
                .position(|c| c == class)
                .ok_or_else(|| ImportError::Entry {
                    entry: entry.name.clone(),
                    reason: format!("class `{class}` is in test/ but not in train/"),
                })?;
        let image = decode(&entry.name, &entry.bytes, options.limits.max_side)?;
        let channels = options.channels.unwrap_or_else(|| match &shape {
            Some((s, _)) => s.channels,
            None if image.color().has_color() => 3,
            None => 1,
        });
        let image = resized(image, options.resize);
        let this = InputShape::new(channels, image.height() as usize, image.width() as usize);
        match &shape {
            None => shape = Some((this, entry.name.clone())),
            Some((first, first_name))
                if (first.height, first.width) != (this.height, this.width) =>
            {
                return Err(ImportError::MixedSizes {
                    entry: entry.name.clone(),
                    size: (this.height, this.width),
                    first: first_name.clone(),
                    first_size: (first.height, first.width),
                })
            }
            Some(_) => {}
        }
        let out = if split == 0 {
            &mut train
        } else {
            has_test = true;
            &mut test
        };
        push_channel_major(&image, channels, &mut out.pixels);
        out.labels.push(label as u8);
    }
    let (shape, _) = shape.ok_or(ImportError::Empty)?;
    Ok(Folder {
        shape,
        class_names,
        train,
        test: has_test.then_some(test),
        skipped,
    })
}

/// Refuses more classes or images than `options` allow.
fn check_counts(classes: usize, images: usize, options: &ImportOptions) -> Result<(), ImportError> {
    let limits = &options.limits;
    for (what, count, limit) in [
        ("classes", classes, limits.max_classes),
        ("images", images, limits.max_images),
    ] {
        if count > limit {
            return Err(ImportError::Bound {
                what: what.into(),
                limit: limit as u64,
            });
        }
    }
    Ok(())
}

/// `image` at `size` (height, width), if one is asked for.
fn resized(image: DynamicImage, size: Option<(usize, usize)>) -> DynamicImage {
    match size {
        Some((h, w)) if (image.height() as usize, image.width() as usize) != (h, w) => {
            image.resize_exact(w as u32, h as u32, FilterType::Triangle)
        }
        _ => image,
    }
}

/// Appends `image` as `channels` planes (1: luma, 3: RGB).
fn push_channel_major(image: &DynamicImage, channels: usize, out: &mut Vec<u8>) {
    if channels == 1 {
        out.extend_from_slice(image.to_luma8().as_raw());
        return;
    }
    let rgb = image.to_rgb8();
    let raw = rgb.as_raw();
    for c in 0..3 {
        out.extend(raw.iter().skip(c).step_by(3));
    }
}
