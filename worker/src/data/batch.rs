//! Turning images into normalised `f32` batches, with optional augmentation
//! (random crop with zero padding, horizontal flip), off by default.

use rand::Rng;

use super::{ChannelStats, Dataset};

/// Training-time augmentation. `Default` is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Augmentation {
    /// Pad each side by this many pixels, then crop back to the original size
    /// at a random offset (0: no cropping).
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub horizontal_flip: bool,
}

impl Augmentation {
    /// Whether any augmentation is enabled.
    pub fn is_enabled(&self) -> bool {
        self.crop_padding > 0 || self.horizontal_flip
    }
}

/// Writes the images at `indices` into `out` as normalised `f32` in `NCHW`
/// order, and their labels into `labels`. `out` is resized to fit; pixels a
/// crop moves in from outside the image are zero before normalisation (as a
/// zero-padded crop), i.e. `-mean / std` after it.
pub fn fill_batch<R: Rng + ?Sized>(
    data: &Dataset,
    indices: &[usize],
    stats: &ChannelStats,
    augmentation: Augmentation,
    rng: &mut R,
    out: &mut Vec<f32>,
    labels: &mut Vec<usize>,
) {
    let (c, h, w) = (data.shape.channels, data.shape.height, data.shape.width);
    let size = c * h * w;
    out.resize(indices.len() * size, 0.0);
    labels.clear();
    // Per-channel affine map of a byte: x / 255 -> (x - mean) / std.
    let (scale, shift) = stats.pixel_affine();
    for (slot, &index) in indices.iter().enumerate() {
        labels.push(usize::from(data.labels[index]));
        let image = data.image(index);
        let dst = &mut out[slot * size..(slot + 1) * size];
        let pad = augmentation.crop_padding as isize;
        let (dy, dx) = if pad > 0 {
            (rng.gen_range(-pad..=pad), rng.gen_range(-pad..=pad))
        } else {
            (0, 0)
        };
        let flip = augmentation.horizontal_flip && rng.gen_bool(0.5);
        for ch in 0..c {
            let plane = &image[ch * h * w..(ch + 1) * h * w];
            let dst = &mut dst[ch * h * w..(ch + 1) * h * w];
            for y in 0..h {
                let sy = y as isize + dy;
                for x in 0..w {
                    let xx = if flip { w - 1 - x } else { x };
                    let sx = xx as isize + dx;
                    let inside = sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize;
                    let byte = if inside {
                        f32::from(plane[sy as usize * w + sx as usize])
                    } else {
                        0.0
                    };
                    dst[y * w + x] = byte * scale[ch] + shift[ch];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use search::InputShape;

    fn data() -> Dataset {
        Dataset {
            shape: InputShape::new(1, 2, 3),
            classes: 3,
            pixels: vec![0, 51, 102, 153, 204, 255, 255, 255, 255, 0, 0, 0],
            labels: vec![2, 1],
        }
    }

    fn unit() -> ChannelStats {
        ChannelStats {
            mean: vec![0.0],
            std: vec![1.0],
        }
    }

    #[test]
    fn batches_are_normalised_in_index_order() {
        let (mut out, mut labels) = (Vec::new(), Vec::new());
        let stats = ChannelStats {
            mean: vec![0.5],
            std: vec![0.5],
        };
        let mut rng = search::seeded_rng(0);
        fill_batch(
            &data(),
            &[1, 0],
            &stats,
            Augmentation::default(),
            &mut rng,
            &mut out,
            &mut labels,
        );
        assert_eq!(labels, vec![1, 2]);
        let expected = [
            1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -0.6, -0.2, 0.2, 0.6, 1.0,
        ];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{out:?}");
        }
    }

    #[test]
    fn flips_mirror_and_crops_shift_with_zero_fill() {
        let (mut out, mut labels) = (Vec::new(), Vec::new());
        let flip = Augmentation {
            crop_padding: 0,
            horizontal_flip: true,
        };
        let mut seen_flipped = false;
        let mut rng = search::seeded_rng(1);
        for _ in 0..20 {
            fill_batch(
                &data(),
                &[0],
                &unit(),
                flip,
                &mut rng,
                &mut out,
                &mut labels,
            );
            let bytes: Vec<u8> = out.iter().map(|v| (v * 255.0).round() as u8).collect();
            assert!(bytes == [0, 51, 102, 153, 204, 255] || bytes == [102, 51, 0, 255, 204, 153]);
            seen_flipped |= bytes[0] == 102;
        }
        assert!(seen_flipped);
        let crop = Augmentation {
            crop_padding: 1,
            horizontal_flip: false,
        };
        for _ in 0..20 {
            fill_batch(
                &data(),
                &[0],
                &unit(),
                crop,
                &mut rng,
                &mut out,
                &mut labels,
            );
            let sum: f32 = out.iter().sum::<f32>() * 255.0;
            // A shifted crop keeps a subset of the pixels and zeros the rest.
            assert!(sum <= 765.0 + 1e-2);
        }
    }
}
