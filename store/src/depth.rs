//! Queue depth: how many trials need a worker with given labels now.
//!
//! One definition serves the queue and the autoscaler: the
//! `nas_trial_demand` view (migration 0008) holds every trial of a running
//! search that needs a worker, as `waiting` (pending and due, or running
//! with an expired lease: a claim or a rescue would take it) or `running`
//! (under a live lease). [`depth_sql`] counts the rows a worker's labels
//! allow. KEDA's PostgreSQL scaler runs that exact text (`nas queue depth
//! --demand --sql`), and [`Store::queue_depth`] runs it too.
//!
//! The autoscaler counts running trials as well as waiting ones: if it
//! counted only waiting trials, every claim would lower its target and it
//! would stop the very workers that had just claimed (which hand their
//! trials back, which raises the target again).

use sqlx::Row;

use crate::queue::label_subsets;
use crate::{Store, StoreError};

/// Which trials a depth counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Trials a worker could claim (or rescue) now.
    Waiting,
    /// Waiting trials and those running: the workers needed, at one trial
    /// each (what the autoscaler scales on).
    Demand,
}

/// Whether `label` can be written into SQL as a literal unchanged.
fn plain_label(label: &str) -> bool {
    label.len() <= 64
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:=/".contains(&b))
}

/// The query counting `depth` for workers offering `labels` (one row,
/// column `depth`). Labels are written as literals, so an autoscaler can
/// run the text as it is; only letters, digits and `- _ . : = /` are
/// accepted.
pub fn depth_sql(labels: &[String], depth: Depth) -> Result<String, StoreError> {
    if let Some(bad) = labels.iter().find(|l| !plain_label(l)) {
        return Err(StoreError::Invalid(format!(
            "label `{bad}`: use letters, digits and - _ . : = / (at most 64)"
        )));
    }
    let mut subsets = label_subsets(labels);
    subsets.sort();
    let list: Vec<String> = subsets.iter().map(|s| format!("'{s}'")).collect();
    let need = match depth {
        Depth::Waiting => "need = 'waiting' AND ",
        Depth::Demand => "",
    };
    Ok(format!(
        "SELECT COUNT(*) AS depth FROM nas_trial_demand WHERE {need}labels IN ({})",
        list.join(", ")
    ))
}

impl Store {
    /// The trials workers offering `labels` could claim now (`Waiting`), or
    /// those plus the ones running (`Demand`): the count the autoscaler sees.
    pub async fn queue_depth(&self, labels: &[String], depth: Depth) -> Result<i64, StoreError> {
        let sql = depth_sql(labels, depth)?;
        Ok(sqlx::query(&sql)
            .fetch_one(self.pool())
            .await?
            .try_get("depth")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_every_label_subset_as_a_literal() {
        let sql = depth_sql(&["gpu".to_owned(), "cpu".to_owned()], Depth::Demand).expect("sql");
        assert_eq!(
            sql,
            "SELECT COUNT(*) AS depth FROM nas_trial_demand WHERE labels IN ('', 'cpu', 'cpu,gpu', 'gpu')"
        );
        let waiting = depth_sql(&[], Depth::Waiting).expect("sql");
        assert!(waiting.ends_with("WHERE need = 'waiting' AND labels IN ('')"));
    }

    #[test]
    fn labels_that_could_break_the_literal_are_refused() {
        for bad in ["x' OR '1'='1", "a b", "é", &"x".repeat(65)] {
            let err = depth_sql(&[bad.to_owned()], Depth::Waiting).expect_err(bad);
            assert!(err.to_string().contains("label"), "{err}");
        }
    }
}
