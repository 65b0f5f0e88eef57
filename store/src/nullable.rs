//! Optional doubles as query parameters.
//!
//! sqlx 0.8's `Any` driver binds `None::<f64>` as a single-precision NULL.
//! PostgreSQL then prepares the statement with a `real` parameter, and a
//! later call of the same statement with a value (sent as a double) fails
//! with "incorrect binary data format". So optional doubles are always bound
//! as `f64`, NaN standing for "none", and the SQL turns NaN back into NULL
//! with [`sql`]. (SQLite stores a bound NaN as NULL anyway.)

/// The value to bind for an optional double.
pub(crate) fn bind_value(value: Option<f64>) -> f64 {
    value.unwrap_or(f64::NAN)
}

/// The SQL expression reading parameter `param` (e.g. `$5`) bound with
/// [`bind_value`]: NULL where it is NaN.
pub(crate) fn sql(param: &str) -> String {
    format!("NULLIF({param}, 'NaN')")
}
