//! Whether a catalog entry runs on this workstation, on integer tuples (never strings: `"7.x"`
//! and `"535.54.03" > "535.104.05"` are the traps of comparing versions as text).
//!
//! - `ok`: the driver's CUDA version (NVML `nvmlSystemGetCudaDriverVersion`) is at least the
//!   image's — what the NVIDIA toolkit's `NVIDIA_REQUIRE_CUDA` check enforces at start — and a
//!   free GPU qualifies.
//! - `limited`: only CUDA minor-version compatibility covers it (same major, driver at least that
//!   major's minimum): it runs with reduced features, and an image that declares
//!   `NVIDIA_REQUIRE_CUDA` will not start.
//! - `busy`: qualifying GPUs exist but are all held.
//! - `blocked`: otherwise (the sentence says why).
//!
//! The driver table is NVIDIA's "CUDA Toolkit and Corresponding Driver Versions" (Linux x86_64,
//! the GA release of each toolkit), from the CUDA release notes.

use serde::{Deserialize, Serialize};

/// A version as numbers: `12.4` → [12, 4], `535.104.05` → [535, 104, 5]; shown as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    parts: Vec<u32>,
    text: String,
}

impl Version {
    /// Digits and dots only; a missing part compares as 0. `"7.x"` and `""` are not versions.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim().trim_start_matches(['v', 'V']);
        if s.is_empty() {
            return None;
        }
        let parts: Option<Vec<u32>> = s.split('.').map(|p| p.parse::<u32>().ok()).collect();
        Some(Version {
            parts: parts?,
            text: s.to_string(),
        })
    }

    pub fn major(&self) -> u32 {
        self.parts.first().copied().unwrap_or(0)
    }

    fn at(&self, i: usize) -> u32 {
        self.parts.get(i).copied().unwrap_or(0)
    }

    /// Compares part by part as numbers, missing parts as 0.
    pub fn cmp_num(&self, o: &Version) -> std::cmp::Ordering {
        let n = self.parts.len().max(o.parts.len());
        (0..n)
            .map(|i| self.at(i).cmp(&o.at(i)))
            .find(|c| c.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }

    pub fn at_least(&self, o: &Version) -> bool {
        self.cmp_num(o).is_ge()
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// (CUDA toolkit, minimum Linux driver).
const DRIVERS: &[(&str, &str)] = &[
    ("13.0", "580.65.06"),
    ("12.9", "575.51.03"),
    ("12.8", "570.26"),
    ("12.6", "560.28.03"),
    ("12.5", "555.42.02"),
    ("12.4", "550.54.14"),
    ("12.3", "545.23.06"),
    ("12.2", "535.54.03"),
    ("12.1", "530.30.02"),
    ("12.0", "525.60.13"),
    ("11.8", "520.61.05"),
    ("11.7", "515.43.04"),
    ("11.6", "510.39.01"),
    ("11.5", "495.29.05"),
    ("11.4", "470.42.01"),
    ("11.3", "465.19.01"),
    ("11.2", "460.27.03"),
    ("11.1", "455.23"),
    ("11.0", "450.51.05"),
    ("10.2", "440.33"),
    ("10.1", "418.39"),
    ("10.0", "410.48"),
];

/// The least driver that runs CUDA `cuda` fully (the first toolkit at or above its major.minor in
/// the table; an update release is taken as its GA).
pub fn min_driver(cuda: &Version) -> Option<Version> {
    let cuda = Version::parse(&format!("{}.{}", cuda.major(), cuda.at(1)))?;
    let cuda = &cuda;
    DRIVERS
        .iter()
        .rev()
        .filter_map(|(c, d)| Some((Version::parse(c)?, Version::parse(d)?)))
        .find(|(c, _)| c.at_least(cuda))
        .map(|(_, d)| d)
}

/// The least driver of a major's minor-version compatibility (11.x: 450.80.02, 12.x: 525.60.13,
/// 13.x: 580.65.06).
pub fn minor_compat_driver(major: u32) -> Option<Version> {
    match major {
        11 => Version::parse("450.80.02"),
        12 => Version::parse("525.60.13"),
        13 => Version::parse("580.65.06"),
        _ => None,
    }
}

/// The least compute capability a CUDA major supports (CUDA 11: Kepler 3.5, 12: Maxwell 5.0,
/// 13: Turing 7.5).
pub fn min_compute_for_cuda(major: u32) -> Option<Version> {
    match major {
        11 => Version::parse("3.5"),
        12 => Version::parse("5.0"),
        13 => Version::parse("7.5"),
        _ => None,
    }
}

/// A GPU generation's name to its compute capability (`ampere` → 8.0), or a number as is.
pub fn generation(s: &str) -> Option<Version> {
    let cc = match s.trim().to_lowercase().as_str() {
        "kepler" => "3.0",
        "maxwell" => "5.0",
        "pascal" => "6.0",
        "volta" => "7.0",
        "turing" => "7.5",
        "ampere" => "8.0",
        "ada" | "ada lovelace" | "lovelace" => "8.9",
        "hopper" => "9.0",
        "blackwell" => "10.0",
        other => return Version::parse(other),
    };
    Version::parse(cc)
}

fn generation_name(cc: &Version) -> &'static str {
    match (cc.major(), cc.at(1)) {
        (3, _) => "Kepler",
        (5, _) => "Maxwell",
        (6, _) => "Pascal",
        (7, 0..=4) => "Volta",
        (7, _) => "Turing",
        (8, 9) => "Ada",
        (8, _) => "Ampere",
        (9, _) => "Hopper",
        (10..=12, _) => "Blackwell",
        _ => "this generation",
    }
}

/// Whether code built for `arch` (`8.0` = sm_80 cubin, `9.0+PTX` = also PTX) runs on `cc`: a
/// cubin runs on the same major at an equal or higher minor; PTX on any higher capability.
pub fn arch_runs_on(arch: &str, cc: &Version) -> bool {
    let (num, ptx) = match arch
        .trim()
        .strip_suffix("+PTX")
        .or_else(|| arch.trim().strip_suffix("+ptx"))
    {
        Some(n) => (n, true),
        None => (arch.trim(), false),
    };
    let Some(a) = Version::parse(num) else {
        return false;
    };
    if ptx && cc.at_least(&a) {
        return true;
    }
    cc.major() == a.major() && cc.at(1) >= a.at(1)
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS,
)]
#[serde(rename_all = "camelCase")]
pub enum CompatStatus {
    Ok,
    Limited,
    Busy,
    Blocked,
}

/// The CUDA version a local image declares in its own environment: `NVIDIA_REQUIRE_CUDA`'s
/// `cuda>=X` (what the NVIDIA toolkit checks at start), else `CUDA_VERSION`.
pub fn image_cuda(env: &[String]) -> Option<String> {
    let get = |k: &str| {
        env.iter()
            .find_map(|e| e.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
    };
    if let Some(req) = get("NVIDIA_REQUIRE_CUDA") {
        if let Some(v) = req
            .split_whitespace()
            .find_map(|t| t.strip_prefix("cuda>="))
            .filter(|v| Version::parse(v).is_some())
        {
            return Some(v.to_string());
        }
    }
    get("CUDA_VERSION")
        .filter(|v| Version::parse(v).is_some())
        .map(str::to_string)
}

/// What an entry asks of the machine.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    pub cpu_only: bool,
    pub cuda: Option<String>,
    pub min_generation: Option<String>,
    pub archs: Vec<String>,
    pub min_memory_bytes: Option<u64>,
}

/// One GPU as the check sees it.
#[derive(Debug, Clone)]
pub struct GpuFacts {
    pub index: u32,
    pub name: String,
    pub compute: Option<String>,
    pub memory_bytes: Option<u64>,
    pub held: bool,
}

/// The machine: driver, its CUDA version, the GPUs.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub driver: Option<String>,
    pub cuda: Option<String>,
    pub gpus: Vec<GpuFacts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Compat {
    pub status: CompatStatus,
    /// `status` is ok.
    pub compatible: bool,
    /// Sentences: why, and what would make it run.
    pub reasons: Vec<String>,
    /// The driver that would run it fully, when the driver is what stands in the way.
    pub needs_driver: Option<String>,
}

fn gpu_reason(g: &GpuFacts, n: &Needs, cuda: Option<&Version>) -> Option<String> {
    let Some(cc) = g.compute.as_deref().and_then(Version::parse) else {
        return Some(format!(
            "GPU {} ({}) reports no compute capability",
            g.index, g.name
        ));
    };
    if let Some(min) = n.min_generation.as_deref().and_then(generation) {
        if !cc.at_least(&min) {
            return Some(format!(
                "GPU {} ({}, compute capability {cc}, {}) is below the minimum generation {} ({min})",
                g.index,
                g.name,
                generation_name(&cc),
                n.min_generation.as_deref().unwrap_or_default()
            ));
        }
    }
    if let Some(c) = cuda {
        if let Some(min) = min_compute_for_cuda(c.major()) {
            if !cc.at_least(&min) {
                return Some(format!(
                    "GPU {} ({}, compute capability {cc}) is too old for CUDA {}, which needs {min} or newer",
                    g.index,
                    g.name,
                    c.major()
                ));
            }
        }
    }
    if !n.archs.is_empty() && !n.archs.iter().any(|a| arch_runs_on(a, &cc)) {
        return Some(format!(
            "no architecture the image was built for ({}) runs on GPU {} ({}, compute capability {cc})",
            n.archs.join(", "),
            g.index,
            g.name
        ));
    }
    if let (Some(need), Some(has)) = (n.min_memory_bytes, g.memory_bytes) {
        if has < need {
            return Some(format!(
                "GPU {} ({}) has {} GB of memory, the image needs {} GB",
                g.index,
                g.name,
                has / 1_000_000_000,
                need.div_ceil(1_000_000_000)
            ));
        }
    }
    None
}

/// The check. `reasons` says why in sentences that name the driver or the GPU.
pub fn check(n: &Needs, m: &Machine) -> Compat {
    let driver_for = |c: &Option<Version>| -> Option<String> {
        let c = c.as_ref()?;
        let have = m.cuda.as_deref().and_then(Version::parse);
        if have.is_some_and(|h| h.at_least(c)) {
            return None;
        }
        min_driver(c).map(|d| d.to_string())
    };
    let cuda_need = n.cuda.as_deref().and_then(Version::parse);
    let needs_driver = driver_for(&cuda_need);
    let done = |status: CompatStatus, reasons: Vec<String>| Compat {
        status,
        compatible: status == CompatStatus::Ok,
        reasons,
        needs_driver: if n.cpu_only {
            None
        } else {
            needs_driver.clone()
        },
    };
    if n.cpu_only {
        return done(
            CompatStatus::Ok,
            vec!["No GPU needed: it runs on the CPU.".into()],
        );
    }
    if m.gpus.is_empty() {
        return done(CompatStatus::Blocked, vec!["This machine has no NVIDIA GPU (or its driver is not loaded); the image needs one.".into()]);
    }
    let mut reasons = Vec::new();
    let mut limited = false;
    let cuda = match n.cuda.as_deref() {
        None | Some("") => None,
        Some(s) => match Version::parse(s) {
            Some(v) => Some(v),
            None => {
                return done(CompatStatus::Blocked, vec![format!("The entry's CUDA version \"{s}\" is not a version (write it as numbers, such as 12.4).")]);
            }
        },
    };
    if let Some(c) = &cuda {
        let have = m.cuda.as_deref().and_then(Version::parse);
        let driver = m.driver.as_deref().and_then(Version::parse);
        let need = min_driver(c);
        let need_text = need
            .as_ref()
            .map(|d| format!("driver {d} or newer"))
            .unwrap_or_else(|| format!("a driver that supports CUDA {c}"));
        match have {
            Some(h) if h.at_least(c) => {}
            Some(h) => {
                let compat = minor_compat_driver(c.major());
                let minor_ok = h.major() == c.major()
                    && match (&driver, &compat) {
                        (Some(d), Some(min)) => d.at_least(min),
                        _ => false,
                    };
                if minor_ok {
                    limited = true;
                    reasons.push(format!(
                        "The driver ({}) supports CUDA {h}; the image is CUDA {c}. It runs through CUDA's minor-version compatibility, with reduced features, and an image that declares NVIDIA_REQUIRE_CUDA will not start: install {need_text} for all of it.",
                        m.driver.as_deref().unwrap_or("?")
                    ));
                } else {
                    return done(CompatStatus::Blocked, vec![format!(
                        "The driver ({}) supports CUDA {h}; the image needs CUDA {c}: install {need_text}.",
                        m.driver.as_deref().unwrap_or("?")
                    )]);
                }
            }
            None => {
                return done(CompatStatus::Blocked, vec![format!("The driver's CUDA version is unknown; the image needs CUDA {c} ({need_text}).")]);
            }
        }
    }
    let mut qualifying = Vec::new();
    let mut why_not = Vec::new();
    for g in &m.gpus {
        match gpu_reason(g, n, cuda.as_ref()) {
            None => qualifying.push(g),
            Some(r) => why_not.push(r),
        }
    }
    if qualifying.is_empty() {
        return done(
            CompatStatus::Blocked,
            why_not
                .into_iter()
                .map(|r| capitalize(&format!("{r}.")))
                .collect(),
        );
    }
    if qualifying.iter().all(|g| g.held) {
        reasons.push(format!(
            "Every GPU it can use ({}) is held now; it runs once one is free.",
            qualifying
                .iter()
                .map(|g| g.index.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return done(CompatStatus::Busy, reasons);
    }
    if limited {
        return done(CompatStatus::Limited, reasons);
    }
    reasons.push(format!(
        "Runs here: GPU {} qualify.",
        qualifying
            .iter()
            .map(|g| g.index.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    done(CompatStatus::Ok, reasons)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn gpu(i: u32, cc: &str, held: bool) -> GpuFacts {
        GpuFacts {
            index: i,
            name: format!("GPU{i}"),
            compute: Some(cc.into()),
            memory_bytes: Some(80_000_000_000),
            held,
        }
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert!(
            v("535.104.05").at_least(&v("535.54.03")),
            "104 > 54 as numbers"
        );
        assert!(!v("535.54.03").at_least(&v("535.104.05")));
        assert!(v("12.10").at_least(&v("12.9")));
        assert!(v("12").at_least(&v("12.0")) && v("12.0").at_least(&v("12")));
        assert_eq!(v("580.65.06").to_string(), "580.65.06");
        assert_eq!(Version::parse("7.x"), None);
        assert_eq!(Version::parse(""), None);
        assert_eq!(min_driver(&v("12.4")), Some(v("550.54.14")));
        assert_eq!(
            min_driver(&v("12.7")),
            Some(v("570.26")),
            "the next toolkit up"
        );
        assert_eq!(generation("Ampere"), Some(v("8.0")));
        assert!(arch_runs_on("8.0", &v("8.6")));
        assert!(!arch_runs_on("8.0", &v("9.0")));
        assert!(arch_runs_on("8.0+PTX", &v("9.0")));
        assert!(!arch_runs_on("9.0", &v("8.0")));
    }

    #[test]
    fn an_images_own_cuda() {
        let env = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            image_cuda(&env(&["PATH=/bin", "CUDA_VERSION=12.4.1"])).as_deref(),
            Some("12.4.1")
        );
        assert_eq!(
            image_cuda(&env(&[
                "CUDA_VERSION=12.4.1",
                "NVIDIA_REQUIRE_CUDA=cuda>=12.4 brand=tesla,driver>=470,driver<471"
            ]))
            .as_deref(),
            Some("12.4")
        );
        assert_eq!(image_cuda(&env(&["CUDA_VERSION=7.x"])), None);
        assert_eq!(image_cuda(&env(&[])), None);
    }

    #[test]
    fn the_table_of_the_issue() {
        // Driver 555.42.06 = CUDA 12.5, one Ampere (8.0) GPU, free.
        let m = Machine {
            driver: Some("555.42.06".into()),
            cuda: Some("12.5".into()),
            gpus: vec![gpu(0, "8.0", false)],
        };
        let needs = |cuda: &str| Needs {
            cuda: Some(cuda.into()),
            ..Default::default()
        };
        assert_eq!(check(&needs("11.8"), &m).status, CompatStatus::Ok);
        assert_eq!(check(&needs("12.4"), &m).status, CompatStatus::Ok);
        let c = check(&needs("12.8"), &m);
        assert_eq!(c.needs_driver.as_deref(), Some("570.26"));
        assert_eq!(check(&needs("12.4"), &m).needs_driver, None);
        assert_eq!(c.status, CompatStatus::Limited);
        assert!(c.reasons[0].contains("570.26"), "{c:?}");
        assert!(!c.compatible);
        let c = check(&needs("13.0"), &m);
        assert_eq!(c.status, CompatStatus::Blocked);
        assert!(c.reasons[0].contains("580.65.06"), "{c:?}");
        // Compute 8.0 vs Ampere and Hopper minimums.
        let mut n = needs("12.4");
        n.min_generation = Some("Ampere".into());
        assert_eq!(check(&n, &m).status, CompatStatus::Ok);
        n.min_generation = Some("Hopper".into());
        let c = check(&n, &m);
        assert_eq!(c.status, CompatStatus::Blocked);
        assert!(
            c.reasons[0].contains("below the minimum generation Hopper"),
            "{c:?}"
        );
        // CUDA 13 on a compute 7.0 (Volta) GPU.
        let volta = Machine {
            driver: Some("580.82.07".into()),
            cuda: Some("13.0".into()),
            gpus: vec![gpu(0, "7.0", false)],
        };
        let c = check(&needs("13.0"), &volta);
        assert_eq!(c.status, CompatStatus::Blocked);
        assert!(
            c.reasons[0].contains("too old for CUDA 13, which needs 7.5"),
            "{c:?}"
        );
        // Held GPUs: busy; CPU-only: anywhere.
        let held = Machine {
            gpus: vec![gpu(0, "8.0", true)],
            ..m.clone()
        };
        assert_eq!(check(&needs("12.4"), &held).status, CompatStatus::Busy);
        let cpu = Needs {
            cpu_only: true,
            ..Default::default()
        };
        assert_eq!(check(&cpu, &Machine::default()).status, CompatStatus::Ok);
        assert_eq!(
            check(&needs("12.4"), &Machine::default()).status,
            CompatStatus::Blocked
        );
        // Architectures and memory.
        let mut n = needs("12.4");
        n.archs = vec!["9.0".into()];
        assert!(check(&n, &m).reasons[0].contains("No architecture"));
        n.archs = vec!["8.0".into(), "9.0+PTX".into()];
        assert_eq!(check(&n, &m).status, CompatStatus::Ok);
        n.min_memory_bytes = Some(100_000_000_000);
        assert!(check(&n, &m).reasons[0].contains("needs 100 GB"));
        let mut bad = needs("7.x");
        bad.cpu_only = false;
        assert!(check(&bad, &m).reasons[0].contains("not a version"));
    }
}
