//! The per-epoch metrics: one [`EpochRow`] per finished epoch, written as `metrics.csv` (columns
//! in the struct's field order, through serde and the `csv` crate) and `metrics.jsonl` (one JSON
//! object per line), both from the same rows; `metrics.jsonl` is what is read back.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// One metrics row (errors in percent). The field order is the column order of `metrics.csv`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Mean training loss (running over the epoch, augmented data, train mode).
    pub train_loss: f64,
    /// Mean training cross-entropy.
    pub train_ce: f64,
    /// Mean training regulariser.
    pub train_reg: f64,
    /// Training top-1 error.
    pub train_top1_err: f64,
    /// Training top-5 error (the official figure's fourth panel).
    #[serde(default = "not_recorded")]
    pub train_top5_err: f64,
    /// Test loss (the training criterion, eval mode).
    pub test_loss: f64,
    /// Test top-1 error.
    pub test_top1_err: f64,
    /// Test top-5 error.
    pub test_top5_err: f64,
    /// Mean test margin `z_y - max_{j!=y} z_j`.
    pub mean_margin: f64,
    /// Mean test entropy of the non-target distribution.
    pub nontarget_entropy: f64,
    /// Wall time of the epoch (train + test).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_s: f64,
}

/// Rows written before a column existed read it as NaN (not recorded), never as 0.
fn not_recorded() -> f64 {
    f64::NAN
}

/// The metrics columns, in order: the field names of [`EpochRow`].
///
/// ```
/// let columns = lmsoftmax::run_folder::metrics::columns();
/// assert_eq!(columns.first().map(String::as_str), Some("epoch"));
/// assert!(columns.iter().any(|c| c == "train_top5_err"));
/// ```
pub fn columns() -> Vec<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(EpochRow::default())
        .expect("a row serialises into memory");
    let text = String::from_utf8(w.into_inner().expect("in memory")).expect("utf-8");
    let header = text.lines().next().unwrap_or_default();
    header.split(',').map(str::to_string).collect()
}

/// `metrics.csv`'s text for `rows` (a header line, then one line per row).
///
/// # Errors
/// Serialisation errors (none for finite or non-finite floats).
pub fn to_csv(rows: &[EpochRow]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if rows.is_empty() {
        w.write_record(columns())?;
    }
    for r in rows {
        w.serialize(r)?;
    }
    let bytes = w.into_inner().context("writing the CSV rows")?;
    Ok(String::from_utf8(bytes)?)
}

/// `metrics.jsonl`'s text for `rows`.
///
/// # Errors
/// Serialisation errors.
pub fn to_jsonl(rows: &[EpochRow]) -> Result<String> {
    let mut s = String::new();
    for r in rows {
        s.push_str(&serde_json::to_string(r)?);
        s.push('\n');
    }
    Ok(s)
}

/// Reads `metrics.jsonl`.
///
/// # Errors
/// An unreadable file, a malformed line (named by its number).
pub fn read_jsonl(path: &Path) -> Result<Vec<EpochRow>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {} (has the run finished an epoch?)",
            path.display()
        )
    })?;
    parse_jsonl(&text).with_context(|| format!("in {}", path.display()))
}

/// Parses `metrics.jsonl` text.
///
/// # Errors
/// A malformed line, named by its number.
pub fn parse_jsonl(text: &str) -> Result<Vec<EpochRow>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<EpochRow>(line) {
            Ok(r) => rows.push(r),
            Err(e) => bail!("line {} is malformed: {e}", i + 1),
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize) -> EpochRow {
        EpochRow {
            epoch,
            lr: 0.1,
            train_loss: 1.25,
            train_ce: 1.0,
            train_reg: 0.25,
            train_top1_err: 40.0,
            train_top5_err: 5.5,
            test_loss: 1.5,
            test_top1_err: 45.0,
            test_top5_err: 7.0,
            mean_margin: 0.125,
            nontarget_entropy: 2.0,
            seconds: 3.0,
            images_per_s: 1000.0,
        }
    }

    #[test]
    fn csv_and_jsonl_hold_the_same_rows_in_the_column_order() {
        let rows = [row(1), row(2)];
        let csv = to_csv(&rows).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next().unwrap(), columns().join(","));
        assert_eq!(
            lines.next().unwrap(),
            "1,0.1,1.25,1.0,0.25,40.0,5.5,1.5,45.0,7.0,0.125,2.0,3.0,1000.0"
        );
        assert_eq!(columns().len(), 14);
        // read back through an independent CSV reader into the same rows
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let back: Vec<EpochRow> = reader.deserialize().map(|r| r.unwrap()).collect();
        assert_eq!(back, rows);
        assert_eq!(parse_jsonl(&to_jsonl(&rows).unwrap()).unwrap(), rows);
        assert_eq!(to_csv(&[]).unwrap().trim_end(), columns().join(","));
    }

    /// A resumed run rewrites `metrics.jsonl` from what it read back, so every f64 must come
    /// back bit for bit: the two values are ones a parser that is not correctly rounded reads
    /// one ulp off (seen in a resumed run), the rest are spread over the exponents.
    #[test]
    fn every_f64_survives_a_jsonl_round_trip_bit_for_bit() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut values = vec![-0.405_218_344_181_776_05, 1_013.725_037_110_058_1];
        while values.len() < 20_000 {
            let v = f64::from_bits(next());
            if v.is_finite() {
                values.push(v);
            }
            // and values of a metric's size, where most of them are
            values.push((next() >> 11) as f64 / (1u64 << 53) as f64 * 100.0 - 50.0);
        }
        let rows: Vec<EpochRow> = values
            .chunks(2)
            .enumerate()
            .map(|(i, v)| EpochRow {
                mean_margin: v[0],
                images_per_s: v[v.len() - 1],
                ..row(i + 1)
            })
            .collect();
        let back = parse_jsonl(&to_jsonl(&rows).unwrap()).unwrap();
        for (a, b) in rows.iter().zip(&back) {
            assert_eq!(
                a.mean_margin.to_bits(),
                b.mean_margin.to_bits(),
                "{}",
                a.mean_margin
            );
            assert_eq!(
                a.images_per_s.to_bits(),
                b.images_per_s.to_bits(),
                "{}",
                a.images_per_s
            );
        }
    }

    #[test]
    fn an_old_row_without_train_top5_reads_it_as_not_recorded() {
        let old = r#"{"epoch":1,"lr":0.1,"train_loss":1.0,"train_ce":1.0,"train_reg":0.0,"train_top1_err":50.0,"test_loss":1.0,"test_top1_err":50.0,"test_top5_err":10.0,"mean_margin":0.1,"nontarget_entropy":2.0,"seconds":1.0,"images_per_s":10.0}"#;
        let rows = parse_jsonl(old).unwrap();
        assert!(rows[0].train_top5_err.is_nan());
        let err = parse_jsonl("{}\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
