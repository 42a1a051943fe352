//! The report in a real browser: headless Chromium renders it without console errors, charts visible.
//!
//! Needs Debian's `chromium` package (`apt-get install -y chromium`); the test fails, not skips,
//! without it. The screenshot is kept at `target/tmp/report-browser/screenshot.png`.

mod synthetic_results;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use layerbench::report::charts::{COST_COLORS, PHASE_COLORS, STRATEGY_COLORS};
use layerbench::report::generate;

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 9000;

fn chromium() -> PathBuf {
    let candidates = [
        std::env::var_os("LAYERBENCH_CHROMIUM").map(PathBuf::from),
        Some("/usr/bin/chromium".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
            "headless Chromium is needed for this test and was not found at /usr/bin/chromium: \
             install Debian's package `chromium` (apt-get install -y chromium), or set \
             LAYERBENCH_CHROMIUM to a Chromium binary"
        )
        })
}

struct Rendered {
    stderr: String,
    stdout: String,
}

/// Runs headless Chromium with the flags this machine needs (no sandbox as root, no background
/// networking on a closed network), bounded in time.
fn run_chromium(extra: &[String], page: &Path) -> Rendered {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let out_pipe = child.stdout.take().unwrap();
    let err_pipe = child.stderr.take().unwrap();
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(out_pipe));
    let stderr = read(Box::new(err_pipe));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish rendering {} within 120 s",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let rendered = Rendered {
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    assert!(
        status.success(),
        "chromium failed ({status}):\n{}",
        rendered.stderr
    );
    rendered
}

/// Console messages Chromium logged for the page (`INFO:CONSOLE:…] "message", source: …`).
fn console_messages(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

struct Screenshot {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

fn decode(path: &Path) -> Screenshot {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "8-bit screenshot");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    Screenshot {
        width: info.width as usize,
        height: info.height as usize,
        rgb,
    }
}

impl Screenshot {
    /// Pixels within a small tolerance of `color` (anti-aliasing and rounding vary), and their
    /// bounding box (x0, y0, x1, y1).
    fn find(&self, color: (u8, u8, u8)) -> (usize, Option<(usize, usize, usize, usize)>) {
        let close = |a: u8, b: u8| a.abs_diff(b) <= 6;
        let mut count = 0;
        let mut bbox: Option<(usize, usize, usize, usize)> = None;
        for (i, p) in self.rgb.iter().enumerate() {
            if close(p[0], color.0) && close(p[1], color.1) && close(p[2], color.2) {
                count += 1;
                let (x, y) = (i % self.width, i / self.width);
                bbox = Some(match bbox {
                    None => (x, y, x, y),
                    Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                });
            }
        }
        (count, bbox)
    }

    fn non_white_share(&self) -> f64 {
        let n = self
            .rgb
            .iter()
            .filter(|p| p.iter().any(|c| *c < 245))
            .count();
        n as f64 / self.rgb.len() as f64
    }
}

fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_report_renders_in_chromium_with_visible_charts_and_no_console_errors() {
    let dir = artifact_dir();
    let index = generate(
        &synthetic_results::spec("synthetic-flask").dir(),
        &dir.join("report"),
    )
    .unwrap();
    let shot_path = dir.join("screenshot.png");
    let rendered = run_chromium(
        &[
            format!("--window-size={WIDTH},{HEIGHT}"),
            format!("--screenshot={}", shot_path.display()),
        ],
        &index,
    );
    println!("screenshot: {}", shot_path.display());
    assert_eq!(
        console_messages(&rendered.stderr),
        Vec::<String>::new(),
        "no console messages"
    );

    let shot = decode(&shot_path);
    assert_eq!((shot.width, shot.height), (WIDTH as usize, HEIGHT as usize));
    assert!(shot.non_white_share() > 0.05, "the page is not blank");
    // Each chart's bars are solid rectangles in known colours: thousands of pixels each, spread
    // over a real area, where a legend swatch alone would be a 14x14 square.
    type Rgb = (u8, u8, u8);
    let charts: [(&str, Vec<Rgb>); 3] = [
        (
            "time per pipeline run",
            STRATEGY_COLORS[..5]
                .iter()
                .map(|c| (c.0, c.1, c.2))
                .collect(),
        ),
        (
            "phases",
            // provision, build and push, in `Phase::ALL` order.
            [0, 3, 5]
                .iter()
                .map(|&i| (PHASE_COLORS[i].0, PHASE_COLORS[i].1, PHASE_COLORS[i].2))
                .collect(),
        ),
        (
            "cost",
            COST_COLORS.iter().map(|c| (c.0, c.1, c.2)).collect(),
        ),
    ];
    for (chart, colors) in charts {
        for color in colors {
            let (count, bbox) = shot.find(color);
            let (x0, y0, x1, y1) =
                bbox.unwrap_or_else(|| panic!("{chart}: colour {color:?} not on the page"));
            assert!(
                count > 1_500,
                "{chart}: colour {color:?} covers {count} pixels only"
            );
            assert!(
                x1 - x0 > 100 && y1 - y0 > 40,
                "{chart}: colour {color:?} drawn over {x0},{y0}-{x1},{y1} only"
            );
        }
    }
    // The cache map's hit and miss cells are HTML, rendered with the page's CSS.
    for (state, color) in [
        ("hit", (0x4c, 0xaf, 0x50)),
        ("miss: input changed", (0xd3, 0x2f, 0x2f)),
    ] {
        let (count, _) = shot.find(color);
        assert!(
            count > 5_000,
            "cache map {state} cells visible: {count} pixels"
        );
    }
}

#[test]
fn the_dom_chromium_built_holds_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let index = generate(
        &synthetic_results::spec("synthetic-all-failed").dir(),
        dir.path(),
    )
    .unwrap();
    let rendered = run_chromium(&["--dump-dom".to_string()], &index);
    assert!(
        console_messages(&rendered.stderr).is_empty(),
        "{}",
        rendered.stderr
    );
    let dom = scraper::Html::parse_document(&rendered.stdout);
    let sel = |css| scraper::Selector::parse(css).unwrap();
    assert_eq!(
        dom.select(&sel("section#verdict")).count(),
        1,
        "the browser parsed the page"
    );
    assert_eq!(
        dom.select(&sel("figure.chart svg")).count(),
        3,
        "inline charts survive parsing"
    );
}

#[test]
fn console_errors_are_caught_by_this_check() {
    // Proves the check above can fail: a page that logs and throws must be caught.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><p>x</p><script>console.error('boom');undefined_call();</script></body></html>",
    )
    .unwrap();
    let rendered = run_chromium(&["--dump-dom".to_string()], &page);
    let messages = console_messages(&rendered.stderr);
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages
        .iter()
        .any(|m| m.contains("Uncaught ReferenceError")));
}
