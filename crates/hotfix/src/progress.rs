//! What the person at the terminal sees while hotfix works: the CLI's
//! [`Ui`], [`Console`].
//!
//! A build on the embedded platform, a Railway deployment or the production
//! health watch can take minutes. Silence for that long reads as a hang at
//! 3 a.m., so every long step (the engine's [`Ui::step`]) stays visible
//! until it ends:
//!
//! - on a terminal (stderr is a TTY): one spinner line with the step, the
//!   time it has taken, its log file and the log's last line, replaced by a
//!   `✓`/`✗` line when it ends;
//! - otherwise (a pipe, CI, `--json`): plain timestamped lines, which a log
//!   keeps readable: the start, a `still …` line every
//!   [`HOTFIX_PROGRESS_INTERVAL`](INTERVAL_ENV) (10 s by default), the end
//!   with the elapsed time;
//! - with `--quiet`: only warnings and errors (a failed step is one).
//!
//! Everything goes to stderr: stdout is for results and `--json`.

use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hotfix_core::display;
use hotfix_engine::{Step, Ui};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a step that is not on a terminal says it is still running
/// (a duration: `10s`, `500ms`). Tests shorten it.
pub const INTERVAL_ENV: &str = hotfix_core::env_vars::HOTFIX_PROGRESS_INTERVAL;

/// Between two `still …` lines when [`INTERVAL_ENV`] is not set: often
/// enough that a silent minute never happens, rarely enough that a CI log
/// of a two-minute build stays short.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// How often the spinner moves and its elapsed time and log tail refresh.
const TICK: Duration = Duration::from_millis(100);

/// The log tail is read every this many ticks (a file read, not a redraw).
const TAIL_EVERY: u32 = 5;

/// The longest log line shown in the spinner; the terminal width cuts it
/// further.
const TAIL_MAX: usize = 120;

/// The spinner's frames (the last one is shown once it is finished).
const SPINNER: &str = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ";

static QUIET: AtomicBool = AtomicBool::new(false);
static JSON: AtomicBool = AtomicBool::new(false);

/// The spinner on screen, if any: lines printed while it spins are printed
/// above it instead of through it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Sets how the process reports progress, from the global flags: `quiet`
/// shows only warnings and errors; `json` (stdout is for a program) keeps
/// progress on stderr as plain lines, never a spinner.
pub fn configure(quiet: bool, json: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
    JSON.store(json, Ordering::Relaxed);
}

/// How steps are shown, decided when each starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Lines,
    Spinner,
}

fn mode() -> Mode {
    if QUIET.load(Ordering::Relaxed) {
        Mode::Quiet
    } else if JSON.load(Ordering::Relaxed)
        || !std::io::stderr().is_terminal()
        || std::env::var(hotfix_core::env_vars::TERM).is_ok_and(|t| t == "dumb")
    {
        Mode::Lines
    } else {
        Mode::Spinner
    }
}

fn interval() -> Duration {
    std::env::var(INTERVAL_ENV)
        .ok()
        .and_then(|v| v.parse::<hotfix_core::duration::HumanDuration>().ok())
        .map(|d| d.0)
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_INTERVAL)
}

/// Prints a line on stderr, above the spinner if one is running.
fn emit(line: &str) {
    let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match active {
        Some(bar) => bar.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// Prints progress on stderr (stdout is for results and `--json`).
pub struct Console;

impl Ui for Console {
    fn info(&self, line: &str) {
        if !QUIET.load(Ordering::Relaxed) {
            emit(&format!("  {}", display::block(line)));
        }
    }
    fn warn(&self, line: &str) {
        emit(&format!("  warning: {}", display::block(line)));
    }
    fn step(&self, what: &str, log: Option<&Path>) -> Box<dyn Step + '_> {
        Box::new(ConsoleStep::start(what, log, mode()))
    }
}

/// A long step on the console; its ticker thread keeps it alive on screen.
struct ConsoleStep {
    what: String,
    log: Option<PathBuf>,
    started: Instant,
    mode: Mode,
    bar: Option<ProgressBar>,
    ticker: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    ended: bool,
}

impl ConsoleStep {
    fn start(what: &str, log: Option<&Path>, mode: Mode) -> ConsoleStep {
        let what = display::line(what).into_owned();
        let log = log.map(shown_path);
        let started = Instant::now();
        // Only what the step itself writes: a log shared by several steps
        // (one per incident) has older lines above.
        let from = log
            .as_deref()
            .and_then(|l| std::fs::metadata(l).ok())
            .map_or(0, |m| m.len());
        let mut bar = None;
        let ticker = match mode {
            Mode::Quiet => None,
            Mode::Lines => {
                emit(&start_line(&clock(), &what, log.as_deref()));
                let (what, log) = (what.clone(), log.clone());
                let every = interval();
                Some(ticker(move |rx| {
                    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                        let tail = log.as_deref().and_then(|l| log_tail(l, from));
                        emit(&still_line(
                            &clock(),
                            &what,
                            started.elapsed(),
                            tail.as_deref(),
                        ));
                    }
                }))
            }
            Mode::Spinner => {
                let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template("  {spinner} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner())
                        .tick_chars(SPINNER),
                );
                b.set_message(spinner_message(&what, Duration::ZERO, log.as_deref(), None));
                *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(b.clone());
                bar = Some(b.clone());
                let (what, log) = (what.clone(), log.clone());
                Some(ticker(move |rx| {
                    let mut tail = None;
                    let mut n = 0u32;
                    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TICK) {
                        if n.is_multiple_of(TAIL_EVERY) {
                            tail = log.as_deref().and_then(|l| log_tail(l, from));
                        }
                        n = n.wrapping_add(1);
                        b.set_message(spinner_message(
                            &what,
                            started.elapsed(),
                            log.as_deref(),
                            tail.as_deref(),
                        ));
                        b.tick();
                    }
                }))
            }
        };
        ConsoleStep {
            what,
            log,
            started,
            mode,
            bar,
            ticker,
            ended: false,
        }
    }

    fn end(&mut self, ok: bool, line: &str) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let Some((stop, handle)) = self.ticker.take() {
            drop(stop);
            let _ = handle.join();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        let line = display::line(line);
        let elapsed = self.started.elapsed();
        // A failure names its log: that is where the person looks next.
        let log = if ok { None } else { self.log.as_deref() };
        match self.mode {
            Mode::Quiet if ok => {}
            Mode::Spinner => emit(&end_line(None, ok, &line, elapsed, log)),
            Mode::Quiet | Mode::Lines => emit(&end_line(Some(&clock()), ok, &line, elapsed, log)),
        }
    }
}

impl Step for ConsoleStep {
    fn done(mut self: Box<Self>, line: &str) {
        self.end(true, line);
    }
    fn fail(mut self: Box<Self>, line: &str) {
        self.end(false, line);
    }
}

impl Drop for ConsoleStep {
    /// A step left without an end (an early return, a panic) must not
    /// leave its spinner or ticker running.
    fn drop(&mut self) {
        let line = format!("{} stopped", self.what);
        self.end(false, &line);
    }
}

/// A thread running `f` until the sender it returns is dropped.
fn ticker(
    f: impl FnOnce(mpsc::Receiver<()>) + Send + 'static,
) -> (mpsc::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    (tx, std::thread::spawn(move || f(rx)))
}

/// The wall-clock time of day, for plain lines.
fn clock() -> String {
    jiff::Zoned::now().strftime("%H:%M:%S").to_string()
}

/// `path` as the person would type it: relative to the current directory
/// when it is under it.
fn shown_path(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
}

/// An elapsed time that cannot be misread: `0.4s`, `12s`, `1m05s`, `1h05m`.
fn elapsed(d: Duration) -> String {
    // Tenths only below 10 s, and never rounded up to a "10.0s".
    if d < Duration::from_millis(9_950) {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let s = d.as_secs().max(10);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

fn log_part(log: Option<&Path>) -> String {
    log.map(|l| format!(" · log: {}", display::line(&l.display().to_string())))
        .unwrap_or_default()
}

/// `12:03:04 deploying preview of 1a2b3c4 · log: .git/hotfix/logs/HF-1.log`
fn start_line(at: &str, what: &str, log: Option<&Path>) -> String {
    format!("  {at} {what}{}", log_part(log))
}

/// `12:03:14 still deploying preview of 1a2b3c4, 10s · last: npm run build`
fn still_line(at: &str, what: &str, took: Duration, tail: Option<&str>) -> String {
    let tail = tail.map(|t| format!(" · last: {t}")).unwrap_or_default();
    format!("  {at} still {what}, {}{tail}", elapsed(took))
}

/// `12:03:16 ✓ preview at http://… · 12s`, or `✗ … · 12s · log: …`; the
/// time of day only in plain lines (a terminal shows it as it happens).
fn end_line(at: Option<&str>, ok: bool, line: &str, took: Duration, log: Option<&Path>) -> String {
    let at = at.map(|a| format!("{a} ")).unwrap_or_default();
    let mark = if ok { '✓' } else { '✗' };
    format!("  {at}{mark} {line} · {}{}", elapsed(took), log_part(log))
}

/// `deploying preview of 1a2b3c4 · 12s · log: … · npm run build`
fn spinner_message(what: &str, took: Duration, log: Option<&Path>, tail: Option<&str>) -> String {
    let tail = tail.map(|t| format!(" · {t}")).unwrap_or_default();
    format!("{what} · {}{}{tail}", elapsed(took), log_part(log))
}

/// The last line written to `path` past byte `from`, as safe text: colour
/// codes gone, a `\r`-redrawn progress line at its latest state, clipped.
fn log_tail(path: &Path, from: u64) -> Option<String> {
    const WINDOW: u64 = 4096;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    // A log rewritten since the step began is the step's own.
    let from = if len < from { 0 } else { from };
    let start = from.max(len.saturating_sub(WINDOW));
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.take(WINDOW).read_to_end(&mut buf).ok()?;
    last_line(&String::from_utf8_lossy(&buf))
}

fn last_line(text: &str) -> Option<String> {
    let line = text
        .lines()
        .map(|l| l.rsplit('\r').find(|p| !p.trim().is_empty()).unwrap_or(""))
        .map(strip_ansi)
        .rfind(|l| !l.trim().is_empty())?;
    let clean: String = line
        .trim()
        .chars()
        .map(|c| if display::is_unsafe(c) { ' ' } else { c })
        .collect();
    Some(if clean.chars().count() > TAIL_MAX {
        let cut: String = clean.chars().take(TAIL_MAX - 1).collect();
        format!("{cut}…")
    } else {
        clean
    })
}

/// Removes ANSI escape sequences (colours, cursor moves) that build tools
/// write even to files.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            // CSI: parameters, then one final byte in @..~.
            Some('[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ST.
            Some(']') => {
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {
                chars.next();
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_times_read_one_way_only() {
        assert_eq!(elapsed(Duration::from_millis(400)), "0.4s");
        assert_eq!(elapsed(Duration::from_millis(9_940)), "9.9s");
        assert_eq!(elapsed(Duration::from_millis(9_960)), "10s");
        assert_eq!(elapsed(Duration::from_secs(12)), "12s");
        assert_eq!(elapsed(Duration::from_secs(65)), "1m05s");
        assert_eq!(elapsed(Duration::from_secs(20 * 60)), "20m00s");
        assert_eq!(elapsed(Duration::from_secs(3900)), "1h05m");
    }

    #[test]
    fn plain_lines_name_the_time_the_step_and_its_log() {
        let log = Path::new(".git/hotfix/logs/HF-1.log");
        assert_eq!(
            start_line("12:03:04", "deploying preview of 1a2b3c4", Some(log)),
            "  12:03:04 deploying preview of 1a2b3c4 · log: .git/hotfix/logs/HF-1.log"
        );
        assert_eq!(
            start_line("12:03:04", "watching http://x/health for 30s", None),
            "  12:03:04 watching http://x/health for 30s"
        );
        assert_eq!(
            still_line(
                "12:03:34",
                "deploying preview of 1a2b3c4",
                Duration::from_secs(30),
                Some("npm run build")
            ),
            "  12:03:34 still deploying preview of 1a2b3c4, 30s · last: npm run build"
        );
        assert_eq!(
            still_line("12:03:34", "building", Duration::from_secs(30), None),
            "  12:03:34 still building, 30s"
        );
    }

    #[test]
    fn an_end_line_says_how_it_went_and_a_failure_names_the_log() {
        let log = Path::new("logs/HF-1.log");
        assert_eq!(
            end_line(
                Some("12:03:16"),
                true,
                "preview at http://127.0.0.1:1",
                Duration::from_secs(12),
                None
            ),
            "  12:03:16 ✓ preview at http://127.0.0.1:1 · 12s"
        );
        assert_eq!(
            end_line(
                None,
                false,
                "preview deploy of 1a2b3c4 failed",
                Duration::from_secs(75),
                Some(log)
            ),
            "  ✗ preview deploy of 1a2b3c4 failed · 1m15s · log: logs/HF-1.log"
        );
    }

    #[test]
    fn the_spinner_shows_step_time_log_and_last_line() {
        assert_eq!(
            spinner_message(
                "building preview of 1a2b3c4",
                Duration::from_secs(12),
                Some(Path::new(".git/hotfix/platform/logs/r3.log")),
                Some("Compiling app")
            ),
            "building preview of 1a2b3c4 · 12s · log: .git/hotfix/platform/logs/r3.log · Compiling app"
        );
    }

    #[test]
    fn the_log_tail_is_the_last_real_line_as_safe_text() {
        assert_eq!(last_line("a\nb\n\n  \n").as_deref(), Some("b"));
        assert_eq!(
            last_line("\u{1b}[32mok\u{1b}[0m step 2\n").as_deref(),
            Some("ok step 2")
        );
        assert_eq!(last_line("10%\r50%\r90%\n").as_deref(), Some("90%"));
        assert_eq!(
            last_line("\u{1b}]0;title\u{7}x\u{7}y").as_deref(),
            Some("x y")
        );
        assert_eq!(last_line("\n\n"), None);
        let long = "x".repeat(500);
        assert_eq!(last_line(&long).unwrap().chars().count(), TAIL_MAX);
    }

    #[test]
    fn the_tail_reads_only_what_the_step_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("HF-1.log");
        std::fs::write(&p, "an older step's line\n").unwrap();
        let from = std::fs::metadata(&p).unwrap().len();
        assert_eq!(log_tail(&p, from), None);
        std::fs::write(&p, "an older step's line\nbuilding\n").unwrap();
        assert_eq!(log_tail(&p, from).as_deref(), Some("building"));
        // Rewritten (shorter) since: all of it is new.
        std::fs::write(&p, "new\n").unwrap();
        assert_eq!(log_tail(&p, from).as_deref(), Some("new"));
        assert_eq!(log_tail(&dir.path().join("none.log"), 0), None);
    }
}
