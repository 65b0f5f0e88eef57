//! Accuracy of a network in eval mode.

use crate::data::{fill_batch, Augmentation, ChannelStats, Dataset};
use crate::host::gate::{in_turn, HostGate};
use crate::net::Network;

/// Images of a batch whose largest logit is their label.
pub(super) fn count_correct(logits: &[f32], labels: &[usize], classes: usize) -> usize {
    logits
        .chunks(classes.max(1))
        .zip(labels)
        .filter(|(row, &label)| argmax(row) == label)
        .count()
}

/// The index of the largest value (the first of equals).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Accuracy of `net` on `data` in eval mode, in batches of `batch_size`.
pub fn evaluate(net: &mut Network, data: &Dataset, stats: &ChannelStats, batch_size: usize) -> f64 {
    evaluate_gated(net, data, stats, batch_size, None)
}

/// [`evaluate`], each batch in a turn of the host's latency `gate`.
pub(super) fn evaluate_gated(
    net: &mut Network,
    data: &Dataset,
    stats: &ChannelStats,
    batch_size: usize,
    gate: Option<&HostGate>,
) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let params = net.tensors();
    let classes = net.architecture().classes;
    let mut rng = search::seeded_rng(0);
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let mut correct = 0;
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        fill_batch(
            data,
            chunk,
            stats,
            Augmentation::default(),
            &mut rng,
            &mut images,
            &mut labels,
        );
        let batch = std::mem::take(&mut images);
        let logits = in_turn(gate, || net.predict(&params, batch, chunk.len()));
        correct += count_correct(&logits, &labels, classes);
    }
    correct as f64 / data.len() as f64
}
