//! Streams written for the numpy reference (`benches/numpy_linucb.py`): the
//! same rows the contenders see, as plain little-endian arrays.
//!
//! For a stream `NAME`, `NAME.json` says `{"rows", "dim", "actions"}`;
//! `NAME.x` holds the contexts (rows × dim f64), `NAME.p` each action's true
//! expected reward (rows × actions f32, NaN where the action is not a
//! candidate) and `NAME.u` each action's uniform draw (rows × actions f32;
//! the realised reward is u < p).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Row;

/// The numpy reference's command-line settings, shared by the harnesses that
/// run it.
#[derive(Debug, clap::Args)]
pub struct ReferenceArgs {
    /// Write every stream for the numpy reference under DIR.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
    /// Also run benches/numpy_linucb.py (needs numpy) on every stream, for
    /// each of its α (exports to a temporary directory unless --export is
    /// given).
    #[arg(long)]
    pub numpy: bool,
    /// The Python that has numpy.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

impl ReferenceArgs {
    /// Where streams are exported: --export, a temporary directory named
    /// after `harness` when only --numpy is given, else nowhere.
    pub fn export_dir(&self, harness: &str) -> Option<PathBuf> {
        match (&self.export, self.numpy) {
            (Some(d), _) => Some(d.clone()),
            (None, true) => {
                Some(std::env::temp_dir().join(format!("nba-{harness}-{}", std::process::id())))
            }
            (None, false) => None,
        }
    }

    /// Finishes `export` and, with --numpy, runs the reference on it: its
    /// (α, mean reward, mean realised) per α. A temporary export is removed
    /// afterwards. Exits with a message if either fails (a harness has
    /// nothing to report without them).
    pub fn finish(&self, export: Export) -> Option<Vec<(String, f64, f64)>> {
        let prefix = export.finish().unwrap_or_else(|e| {
            eprintln!("error: export: {e}");
            std::process::exit(2)
        });
        if !self.numpy {
            return None;
        }
        let runs = numpy_linucb(&self.python, &prefix).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2)
        });
        if self.export.is_none() {
            for ext in ["json", "x", "p", "u"] {
                let _ = std::fs::remove_file(prefix.with_extension(ext));
            }
        }
        Some(runs)
    }

    /// Removes a temporary export directory (never one given by --export).
    pub fn clean_up(&self, dir: Option<&Path>) {
        if let (Some(dir), None) = (dir, &self.export) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// An export being written.
#[derive(Debug)]
pub struct Export {
    prefix: PathBuf,
    x: BufWriter<File>,
    p: BufWriter<File>,
    u: BufWriter<File>,
    rows: u64,
    dim: usize,
    actions: usize,
}

impl Export {
    /// Starts `dir/name.*` for `actions` actions and contexts of `dim`.
    pub fn create(dir: &Path, name: &str, dim: usize, actions: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let prefix = dir.join(name);
        let open = |ext: &str| -> std::io::Result<BufWriter<File>> {
            Ok(BufWriter::new(File::create(prefix.with_extension(ext))?))
        };
        Ok(Self {
            x: open("x")?,
            p: open("p")?,
            u: open("u")?,
            prefix,
            rows: 0,
            dim,
            actions,
        })
    }

    /// Appends one row; a row with no candidates is left out, as the
    /// contenders' runner leaves it out.
    pub fn write(&mut self, row: &Row) -> std::io::Result<()> {
        if row.candidates.is_empty() {
            return Ok(());
        }
        for v in &row.x {
            self.x.write_all(&v.to_le_bytes())?;
        }
        let mut p = vec![f32::NAN; self.actions];
        let mut u = vec![1.0f32; self.actions];
        for (i, a) in row.candidates.iter().enumerate() {
            p[*a as usize] = row.truth[i] as f32;
            u[*a as usize] = row.draw[i] as f32;
        }
        for v in p {
            self.p.write_all(&v.to_le_bytes())?;
        }
        for v in u {
            self.u.write_all(&v.to_le_bytes())?;
        }
        self.rows += 1;
        Ok(())
    }

    /// Finishes the arrays and writes the header; returns the prefix.
    pub fn finish(mut self) -> std::io::Result<PathBuf> {
        self.x.flush()?;
        self.p.flush()?;
        self.u.flush()?;
        std::fs::write(
            self.prefix.with_extension("json"),
            serde_json::json!({ "rows": self.rows, "dim": self.dim, "actions": self.actions })
                .to_string(),
        )?;
        Ok(self.prefix)
    }
}

/// Runs `benches/numpy_linucb.py` with `python` on the stream exported at
/// `prefix`: (α, mean expected reward, mean realised reward) for each α.
pub fn numpy_linucb(python: &str, prefix: &Path) -> Result<Vec<(String, f64, f64)>, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("numpy_linucb.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(prefix)
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed (does {python} have numpy? `{python} -m pip install numpy`): {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("numpy_linucb.py printed no JSON: {e}"))?;
    Ok(v.as_object()
        .map(|m| {
            m.iter()
                .map(|(alpha, r)| {
                    (
                        alpha.clone(),
                        r["mean_reward"].as_f64().unwrap_or(f64::NAN),
                        r["mean_realised"].as_f64().unwrap_or(f64::NAN),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}
