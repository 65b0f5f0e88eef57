//! Multi-objective ranking as pure functions on cost vectors (every
//! coordinate minimised; accuracy enters negated):
//!
//! - [`fronts`]: non-dominated sorting (Deb et al., NSGA-II, 2002);
//! - [`crowding`]: the crowding distance inside a front;
//! - [`dominance_order`]: a total order, best first, by (front, crowding);
//! - [`hypervolume`]: the share of the box between the ideal point and a
//!   reference point that a set of points dominates (2 or 3 coordinates);
//! - [`spread`]: `k` points chosen greedily by hypervolume contribution, so
//!   they spread along a front instead of crowding at its accurate end.
//!
//! Multi-objective ASHA (Schmucker et al., 2021) and NSGA-II parent choice
//! are built on [`dominance_order`]; final models on [`spread`].

use std::cmp::Ordering;

/// Most coordinates a cost vector has (a Pareto objective's metrics).
pub const MAX_METRICS: usize = 3;

/// One point's costs: up to [`MAX_METRICS`] coordinates, each minimised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    values: [f64; MAX_METRICS],
    len: usize,
}

impl Costs {
    /// Costs from `values` (at most [`MAX_METRICS`]; extra ones are dropped).
    pub fn new(values: &[f64]) -> Self {
        let len = values.len().min(MAX_METRICS);
        let mut out = [0.0; MAX_METRICS];
        out[..len].copy_from_slice(&values[..len]);
        Self { values: out, len }
    }

    /// The coordinates.
    pub fn as_slice(&self) -> &[f64] {
        &self.values[..self.len]
    }

    /// Whether every coordinate is a finite number (others are never on a
    /// front: they rank in a last front of their own).
    pub fn is_finite(&self) -> bool {
        self.as_slice().iter().all(|v| v.is_finite())
    }
}

/// Whether `a` dominates `b`: no worse in every coordinate, better in one.
pub fn dominates(a: &Costs, b: &Costs) -> bool {
    let mut better = false;
    for (x, y) in a.as_slice().iter().zip(b.as_slice()) {
        if x > y {
            return false;
        }
        better |= x < y;
    }
    better
}

/// The non-dominated fronts of `points`, best first; each front's indices
/// ascending. Points with a non-finite coordinate form a last front.
/// Identical points share a front. O(M·N²) (Deb's fast sort), a few
/// milliseconds at 1,000 points.
pub fn fronts(points: &[Costs]) -> Vec<Vec<usize>> {
    let (finite, broken): (Vec<usize>, Vec<usize>) =
        (0..points.len()).partition(|&i| points[i].is_finite());
    let n = finite.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominating: Vec<Vec<usize>> = vec![Vec::new(); n];
    for a in 0..n {
        for b in (a + 1)..n {
            let (pa, pb) = (&points[finite[a]], &points[finite[b]]);
            if dominates(pa, pb) {
                dominating[a].push(b);
                dominated_by[b] += 1;
            } else if dominates(pb, pa) {
                dominating[b].push(a);
                dominated_by[a] += 1;
            }
        }
    }
    let mut out = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&a| dominated_by[a] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &a in &current {
            for &b in &dominating[a] {
                dominated_by[b] -= 1;
                if dominated_by[b] == 0 {
                    next.push(b);
                }
            }
        }
        let mut front: Vec<usize> = current.iter().map(|&a| finite[a]).collect();
        front.sort_unstable();
        out.push(front);
        current = next;
    }
    if !broken.is_empty() {
        out.push(broken);
    }
    out
}

/// The crowding distance of each member of `front` (same order): the sum
/// over coordinates of the gap between its neighbours, normalised by the
/// front's range; the extremes of each coordinate are infinitely far.
/// Larger is lonelier, so preferred.
pub fn crowding(points: &[Costs], front: &[usize]) -> Vec<f64> {
    let mut distance = vec![0.0; front.len()];
    if front.len() <= 2 {
        return vec![f64::INFINITY; front.len()];
    }
    let dims = front
        .iter()
        .map(|&i| points[i].as_slice().len())
        .min()
        .unwrap_or(0);
    for d in 0..dims {
        let mut order: Vec<usize> = (0..front.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (points[front[a]].values[d], points[front[b]].values[d]);
            x.total_cmp(&y).then(front[a].cmp(&front[b]))
        });
        let (first, last) = (order[0], order[order.len() - 1]);
        let range = points[front[last]].values[d] - points[front[first]].values[d];
        distance[first] = f64::INFINITY;
        distance[last] = f64::INFINITY;
        if !(range.is_finite() && range > 0.0) {
            continue;
        }
        for w in order.windows(3) {
            let gap = points[front[w[2]]].values[d] - points[front[w[0]]].values[d];
            distance[w[1]] += gap / range;
        }
    }
    distance
}

/// Where a point stands among others: its front (0 is non-dominated) and
/// its crowding distance inside that front.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    /// 0-based non-dominated rank.
    pub front: usize,
    /// Crowding distance inside the front (larger first).
    pub crowding: f64,
}

/// Each point's [`Standing`].
pub fn standings(points: &[Costs]) -> Vec<Standing> {
    let mut out = vec![
        Standing {
            front: 0,
            crowding: 0.0
        };
        points.len()
    ];
    for (rank, front) in fronts(points).iter().enumerate() {
        for (&i, distance) in front.iter().zip(crowding(points, front)) {
            out[i] = Standing {
                front: rank,
                crowding: distance,
            };
        }
    }
    out
}

/// Compares two standings, better first: lower front, then larger crowding.
pub fn compare(a: &Standing, b: &Standing) -> Ordering {
    a.front
        .cmp(&b.front)
        .then(b.crowding.total_cmp(&a.crowding))
}

/// Every index of `points`, best first: by front, then crowding distance
/// (larger first), then index. NSGA-II's order, and the order in which
/// multi-objective ASHA promotes.
pub fn dominance_order(points: &[Costs]) -> Vec<usize> {
    let standing = standings(points);
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| compare(&standing[a], &standing[b]).then(a.cmp(&b)));
    order
}

/// Multi-objective ASHA's rule: whether `points[own]`, which has just ended
/// a rung where `points` (its own included) were recorded, is in the top
/// `ceil(n / eta)` by [`dominance_order`]: fewer than `ceil(n / eta)`
/// points stand strictly better (a lower front, or the same front and a
/// larger crowding distance). Returns the decision and that count. Ties go
/// on, as under the single-objective rule, so the decision does not depend
/// on the order the points are listed in.
pub fn goes_on_by_dominance(points: &[Costs], own: usize, eta: u32) -> (bool, usize) {
    let standing = standings(points);
    let Some(mine) = standing.get(own) else {
        return (false, points.len());
    };
    let better = standing
        .iter()
        .filter(|s| compare(s, mine) == Ordering::Less)
        .count();
    let cut = points.len().max(1).div_ceil(eta.max(2) as usize);
    (better < cut, better)
}

/// The box hypervolume is measured in: the ideal point (the best each
/// coordinate can be) and the reference point (the worst that still counts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// The best value of each coordinate (e.g. -1 for negated accuracy, 0 ms).
    pub ideal: Costs,
    /// The reference point: a point adds volume only where it is better
    /// than this in every coordinate.
    pub reference: Costs,
}

impl Bounds {
    /// A point's coordinates scaled to `[0, 1]` inside the box (0 at the
    /// ideal, 1 at the reference); `None` unless strictly better than the
    /// reference in every coordinate.
    fn scaled(&self, point: &Costs) -> Option<Costs> {
        let mut out = Vec::with_capacity(MAX_METRICS);
        for ((&v, &ideal), &reference) in point
            .as_slice()
            .iter()
            .zip(self.ideal.as_slice())
            .zip(self.reference.as_slice())
        {
            let width = reference - ideal;
            if !(v.is_finite() && v < reference && width > 0.0) {
                return None;
            }
            out.push(((v - ideal) / width).max(0.0));
        }
        Some(Costs::new(&out))
    }
}

/// The hypervolume of `points` inside `bounds`: the share (0 to 1) of the
/// box from the ideal point to the reference point that they dominate,
/// with each coordinate scaled linearly. Exact for 2 coordinates (a sweep)
/// and 3 (slices of 2-D sweeps).
pub fn hypervolume(points: &[Costs], bounds: &Bounds) -> f64 {
    let scaled: Vec<Costs> = points.iter().filter_map(|p| bounds.scaled(p)).collect();
    match bounds.reference.as_slice().len() {
        0 => 0.0,
        1 => scaled.iter().map(|p| 1.0 - p.values[0]).fold(0.0, f64::max),
        2 => area(scaled.iter().map(|p| (p.values[0], p.values[1])).collect()),
        _ => {
            let mut by_z = scaled;
            by_z.sort_by(|a, b| a.values[2].total_cmp(&b.values[2]));
            let mut volume = 0.0;
            for i in 0..by_z.len() {
                let top = by_z.get(i + 1).map_or(1.0, |p| p.values[2]);
                let depth = top - by_z[i].values[2];
                if depth > 0.0 {
                    let slice = by_z[..=i].iter().map(|p| (p.values[0], p.values[1]));
                    volume += depth * area(slice.collect());
                }
            }
            volume
        }
    }
}

/// The area dominated by `points` in the unit square, reference (1, 1).
fn area(mut points: Vec<(f64, f64)>) -> f64 {
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut lowest = 1.0;
    let mut total = 0.0;
    for (x, y) in points {
        if y < lowest {
            total += (1.0 - x) * (lowest - y);
            lowest = y;
        }
    }
    total
}

/// Up to `k` indices of `points` that spread along their front: chosen one
/// at a time, each the point adding the most hypervolume to those already
/// chosen (ties: the lower first coordinate, then the index). Once no
/// point adds any (dominated, or outside the box), the rest follow in
/// [`dominance_order`].
pub fn spread(points: &[Costs], k: usize, bounds: &Bounds) -> Vec<usize> {
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    let mut chosen_costs: Vec<Costs> = Vec::with_capacity(k);
    let mut volume = 0.0;
    while chosen.len() < k {
        let mut best: Option<(usize, f64)> = None;
        for i in 0..points.len() {
            if chosen.contains(&i) {
                continue;
            }
            chosen_costs.push(points[i]);
            let gain = hypervolume(&chosen_costs, bounds) - volume;
            chosen_costs.pop();
            let better = match best {
                None => gain > 0.0,
                Some((j, g)) => {
                    gain > g || (gain == g && points[i].values[0] < points[j].values[0])
                }
            };
            if better && gain > 0.0 {
                best = Some((i, gain));
            }
        }
        let Some((i, gain)) = best else {
            break;
        };
        chosen.push(i);
        chosen_costs.push(points[i]);
        volume += gain;
    }
    for i in dominance_order(points) {
        if chosen.len() >= k {
            break;
        }
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: &[f64]) -> Costs {
        Costs::new(v)
    }

    fn pseudo_random(seed: u64) -> impl FnMut() -> f64 {
        let mut x = seed;
        move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % 11) as f64 / 10.0
        }
    }

    #[test]
    fn fronts_match_the_definition() {
        let mut next = pseudo_random(7);
        for dims in [2, 3] {
            for _ in 0..40 {
                let points: Vec<Costs> = (0..25)
                    .map(|_| Costs::new(&(0..dims).map(|_| next()).collect::<Vec<_>>()))
                    .collect();
                let fronts = fronts(&points);
                assert_eq!(fronts.iter().map(Vec::len).sum::<usize>(), points.len());
                // Nobody in a front is dominated by anyone in it or later; each
                // member of front r > 0 is dominated by someone in front r - 1.
                for (r, front) in fronts.iter().enumerate() {
                    for &i in front {
                        for later in &fronts[r..] {
                            assert!(later.iter().all(|&j| !dominates(&points[j], &points[i])));
                        }
                        if r > 0 {
                            assert!(fronts[r - 1]
                                .iter()
                                .any(|&j| dominates(&points[j], &points[i])));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn broken_points_rank_last_and_ties_share_a_front() {
        let points = [
            c(&[-0.9, 1.0]),
            c(&[f64::NAN, 0.1]),
            c(&[-0.9, 1.0]),
            c(&[-0.8, 2.0]),
        ];
        assert_eq!(fronts(&points), vec![vec![0, 2], vec![3], vec![1]]);
    }

    #[test]
    fn crowding_prefers_the_extremes_then_the_lonely() {
        // A front of five on a line; the middle one at 0.5 is 0.2 from both
        // neighbours, the one at 0.2 is between 0.0 and 0.5.
        let points: Vec<Costs> = [0.0, 0.2, 0.5, 0.7, 1.0]
            .iter()
            .map(|&x| c(&[x, 1.0 - x]))
            .collect();
        let d = crowding(&points, &[0, 1, 2, 3, 4]);
        assert!(d[0].is_infinite() && d[4].is_infinite());
        assert!((d[1] - 1.0).abs() < 1e-12, "{d:?}"); // (0.5 - 0) * 2 coordinates
        assert!((d[2] - 1.0).abs() < 1e-12);
        assert!((d[3] - 1.0).abs() < 1e-12);
        assert_eq!(dominance_order(&points)[..2], [0, 4]);
    }

    #[test]
    fn mo_asha_promotes_the_first_front_first() {
        // Nine results at a rung, eta 3: the top three go on.
        let points = [
            c(&[-0.90, 1.0]), // front 0
            c(&[-0.80, 0.2]), // front 0
            c(&[-0.85, 0.5]), // front 0
            c(&[-0.70, 0.9]), // dominated
            c(&[-0.60, 0.4]), // dominated
            c(&[-0.84, 0.6]), // dominated by [2]
            c(&[-0.50, 2.0]),
            c(&[-0.79, 0.3]),
            c(&[-0.10, 0.1]), // front 0: the fastest
        ];
        let goes: Vec<usize> = (0..points.len())
            .filter(|&i| goes_on_by_dominance(&points, i, 3).0)
            .collect();
        assert_eq!(goes.len(), 3);
        // Front 0 has four members; the extremes ([0] most accurate, [8]
        // fastest) are infinitely crowded-distant and go on, then the
        // loneliest of [1] and [2].
        assert!(goes.contains(&0) && goes.contains(&8), "{goes:?}");
        // The first result at a rung always goes on.
        assert!(goes_on_by_dominance(&points[3..4], 0, 3).0);
    }

    #[test]
    fn hypervolume_2d_and_3d_by_hand() {
        let bounds = Bounds {
            ideal: c(&[-1.0, 0.0]),
            reference: c(&[0.0, 2.0]),
        };
        // One point at accuracy 0.5, 1 ms: half of each axis, a quarter.
        assert!((hypervolume(&[c(&[-0.5, 1.0])], &bounds) - 0.25).abs() < 1e-12);
        // Adding a dominated point changes nothing; one outside the box neither.
        let with_dominated = [c(&[-0.5, 1.0]), c(&[-0.4, 1.5]), c(&[-0.9, 3.0])];
        assert!((hypervolume(&with_dominated, &bounds) - 0.25).abs() < 1e-12);
        // Two steps: (0.5 acc, 1 ms) and (0.8 acc, 1.6 ms) -> 0.25 + 0.3 * 0.2.
        let two = [c(&[-0.5, 1.0]), c(&[-0.8, 1.6])];
        assert!((hypervolume(&two, &bounds) - (0.25 + 0.3 * 0.2)).abs() < 1e-12);
        // 3-D: a unit cube, two boxes overlapping in a quarter of their volume.
        let cube = Bounds {
            ideal: c(&[0.0, 0.0, 0.0]),
            reference: c(&[1.0, 1.0, 1.0]),
        };
        let boxes = [c(&[0.0, 0.5, 0.0]), c(&[0.5, 0.0, 0.0])];
        assert!((hypervolume(&boxes, &cube) - (0.5 + 0.5 - 0.25)).abs() < 1e-12);
        let stacked = [c(&[0.0, 0.0, 0.5]), c(&[0.5, 0.5, 0.0])];
        assert!((hypervolume(&stacked, &cube) - (0.5 + 0.25 - 0.125)).abs() < 1e-12);
    }

    #[test]
    fn hypervolume_matches_a_grid_count() {
        let mut next = pseudo_random(99);
        let cube = Bounds {
            ideal: c(&[0.0, 0.0, 0.0]),
            reference: c(&[1.0, 1.0, 1.0]),
        };
        for _ in 0..10 {
            let points: Vec<Costs> = (0..6)
                .map(|_| c(&[next() * 0.95, next() * 0.95, next() * 0.95]))
                .collect();
            // Count the cells of a 0.01 grid the points dominate.
            let n = 100;
            let mut inside = 0;
            for i in 0..n {
                for j in 0..n {
                    for k in 0..n {
                        let cell = [
                            (i as f64 + 0.5) / n as f64,
                            (j as f64 + 0.5) / n as f64,
                            (k as f64 + 0.5) / n as f64,
                        ];
                        if points
                            .iter()
                            .any(|p| p.as_slice().iter().zip(cell).all(|(&v, x)| v <= x))
                        {
                            inside += 1;
                        }
                    }
                }
            }
            let counted = inside as f64 / (n * n * n) as f64;
            let exact = hypervolume(&points, &cube);
            assert!((counted - exact).abs() < 0.02, "{counted} vs {exact}");
        }
    }

    #[test]
    fn spread_covers_the_front_not_its_accurate_end() {
        let bounds = Bounds {
            ideal: c(&[-1.0, 0.0]),
            reference: c(&[0.0, 2.0]),
        };
        // Three accurate slow networks and two fast ones.
        let points = [
            c(&[-0.93, 1.8]),
            c(&[-0.929, 1.7]),
            c(&[-0.928, 1.75]),
            c(&[-0.91, 0.2]),
            c(&[-0.88, 0.1]),
        ];
        let chosen = spread(&points, 3, &bounds);
        assert_eq!(chosen.len(), 3);
        assert!(chosen.contains(&3) && chosen.contains(&4), "{chosen:?}");
        // Asking for more than the front holds fills in dominance order.
        let all = spread(&points, 9, &bounds);
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
    }
}
