//! Every environment variable hotfix reads or hands to the programs it
//! runs, in one registry (as uv keeps its `EnvVars`).
//!
//! Why one list: a variable read in one module and documented in another
//! drifts (a renamed variable, a secret nobody lists). The registry is pure
//! data; the code that reads the environment takes the names from here,
//! and two tests hold it to the truth: every `HOTFIX_*` (and third-party)
//! name written in the sources is registered, and the README's
//! "Environment variables" table lists exactly the [`Kind::Setting`] and
//! [`Kind::Secret`] entries.

/// What a variable is to hotfix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A setting a user exports (`HOTFIX_USER`).
    Setting,
    /// A credential: read from the environment only, never printed.
    Secret,
    /// Set by hotfix for a program it starts (deploy commands, analysis
    /// commands, releases on the embedded platform); documented with that
    /// program's section of the README.
    Passed,
    /// Read by the test suite only.
    Test,
    /// A standard variable read for its standard meaning (`HOME`).
    System,
}

/// One variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    pub name: &'static str,
    pub kind: Kind,
    /// Who reads it (or, for [`Kind::Passed`], who receives it).
    pub by: &'static str,
    /// One line: what it does.
    pub meaning: &'static str,
}

macro_rules! registry {
    ($($konst:ident = $name:literal, $kind:ident, $by:literal, $meaning:literal;)*) => {
        $(
            #[doc = $meaning]
            pub const $konst: &str = $name;
        )*
        /// Every variable, in the README's order.
        pub const ALL: &[Var] = &[
            $(Var { name: $name, kind: Kind::$kind, by: $by, meaning: $meaning },)*
        ];
    };
}

registry! {
    HOTFIX_USER = "HOTFIX_USER", Setting, "cli", "the acting person when `--as` is not given";
    HOTFIX_DATABASE_URL = "HOTFIX_DATABASE_URL", Secret, "cli, serve", "the incident log: sqlite:PATH or a postgres:// URL (with its password)";
    HOTFIX_DATABASE_POOL_SIZE = "HOTFIX_DATABASE_POOL_SIZE", Setting, "serve", "connections in the PostgreSQL pool of `hotfix serve`";
    HOTFIX_CONFIG = "HOTFIX_CONFIG", Setting, "cli, serve", "another config file than <repo>/hotfix.toml";
    HOTFIX_NOW = "HOTFIX_NOW", Setting, "cli, serve", "fixes the clock (RFC 3339), for tests and reproducible runs";
    HOTFIX_FAILPOINTS = "HOTFIX_FAILPOINTS", Setting, "cli", "failpoints at which a command exits abruptly (crash-safety tests)";
    HOTFIX_PROGRESS_INTERVAL = "HOTFIX_PROGRESS_INTERVAL", Setting, "cli", "how often a long step prints a `still …` line without a terminal";
    HOTFIX_LOG = "HOTFIX_LOG", Setting, "serve, platform", "log filter (tracing EnvFilter directives, default info)";
    HOTFIX_LOG_FORMAT = "HOTFIX_LOG_FORMAT", Setting, "serve, platform", "log format: text (default) or json";
    TERM = "TERM", Setting, "cli", "`dumb`: plain progress lines instead of the spinner";
    HOTFIX_TEST_DATABASE_URL = "HOTFIX_TEST_DATABASE_URL", Setting, "tests", "PostgreSQL for the store tests";
    GITHUB_TOKEN = "GITHUB_TOKEN", Secret, "cli", "the GitHub forge's token";
    HOTFIX_GITHUB_TOKEN = "HOTFIX_GITHUB_TOKEN", Secret, "cli", "the GitHub forge's token (preferred over GITHUB_TOKEN)";
    RAILWAY_API_TOKEN = "RAILWAY_API_TOKEN", Secret, "cli", "Railway: an account/workspace token (Bearer)";
    RAILWAY_TOKEN = "RAILWAY_TOKEN", Secret, "cli", "Railway: a project token (Project-Access-Token)";
    SLACK_BOT_TOKEN = "SLACK_BOT_TOKEN", Secret, "cli, serve", "Slack: a bot token (chat:write)";
    HOTFIX_SLACK_WEBHOOK_URL = "HOTFIX_SLACK_WEBHOOK_URL", Secret, "cli, serve", "Slack: an incoming webhook URL";
    HOTFIX_WEBHOOK_URL = "HOTFIX_WEBHOOK_URL", Secret, "cli, serve", "the generic webhook's URL";
    HOTFIX_WEBHOOK_SECRET = "HOTFIX_WEBHOOK_SECRET", Secret, "cli, serve", "the generic webhook's signing secret";
    STATUSPAGE_API_KEY = "STATUSPAGE_API_KEY", Secret, "cli, serve", "Statuspage's API key";
    HOTFIX_SERVER = "HOTFIX_SERVER", Setting, "cli", "remote mode: the team server's URL (`off` forces the local log)";
    HOTFIX_TOKEN = "HOTFIX_TOKEN", Secret, "cli", "remote mode: your API token";
    HOTFIX_DATA_DIR = "HOTFIX_DATA_DIR", Setting, "serve", "`hotfix serve`'s data directory";
    HOTFIX_REPLICA = "HOTFIX_REPLICA", Setting, "serve", "`hotfix serve`'s name in leases";
    HOTFIX_PLATFORM_DIR = "HOTFIX_PLATFORM_DIR", Setting, "serve", "the embedded platform's state directory on the server's host";
    HOTFIX_GITHUB_WEBHOOK_SECRET = "HOTFIX_GITHUB_WEBHOOK_SECRET", Secret, "serve", "verifies GitHub's X-Hub-Signature-256";
    SLACK_SIGNING_SECRET = "SLACK_SIGNING_SECRET", Secret, "serve", "verifies /hotfix slash commands";
    SENTRY_CLIENT_SECRET = "SENTRY_CLIENT_SECRET", Secret, "serve", "verifies Sentry-Hook-Signature";
    CHROMEDRIVER = "CHROMEDRIVER", Setting, "tests", "the browser test's chromedriver";

    HOTFIX_INCIDENT = "HOTFIX_INCIDENT", Passed, "deploy commands", "the incident id (HF-N)";
    HOTFIX_SHA = "HOTFIX_SHA", Passed, "deploy and analysis commands, releases", "the commit deployed";
    HOTFIX_BRANCH = "HOTFIX_BRANCH", Passed, "deploy commands", "the hotfix branch";
    HOTFIX_PR = "HOTFIX_PR", Passed, "deploy commands", "the pull request number, when there is one";
    HOTFIX_ENV = "HOTFIX_ENV", Passed, "deploy commands", "preview or production";
    HOTFIX_TREE = "HOTFIX_TREE", Passed, "deploy commands", "the git tree id of the commit deployed";
    HOTFIX_PREVIEW_SHA = "HOTFIX_PREVIEW_SHA", Passed, "deploy commands", "the sha the preview built and smoke-tested";
    HOTFIX_PREVIEWED = "HOTFIX_PREVIEWED", Passed, "deploy commands", "1 when the tree deployed is the previewed tree, else 0";
    HOTFIX_DEPLOYED_AT = "HOTFIX_DEPLOYED_AT", Passed, "analysis commands", "when the release went live (RFC 3339)";
    HOTFIX_WINDOW_S = "HOTFIX_WINDOW_S", Passed, "analysis commands", "the watch window in seconds";
    HOTFIX_PREVIOUS_SHA = "HOTFIX_PREVIOUS_SHA", Passed, "analysis commands", "the release before, for a baseline";
    HOTFIX_RELEASE = "HOTFIX_RELEASE", Passed, "releases", "the embedded platform's release id";
    PORT = "PORT", Passed, "releases", "the port a release listens on";
    DATA_DIR = "DATA_DIR", Passed, "releases", "the release's data directory";

    HOME = "HOME", System, "serve", "libpq's default root certificate, ~/.postgresql/root.crt";
    HOSTNAME = "HOSTNAME", System, "serve", "the default replica name";

    CARGO_PKG_NAME = "CARGO_PKG_NAME", Test, "tests", "set by cargo for a test run: the hermetic-environment test checks it does not leak";
    CI = "CI", Test, "tests", "`true`: a test that would skip for a missing service fails";
    HOTFIX_ANALYSIS_TEST_SERVE = "HOTFIX_ANALYSIS_TEST_SERVE", Test, "tests", "set on the test binary the platform runs as a release";
}

/// The registered variable of this name.
pub fn get(name: &str) -> Option<&'static Var> {
    ALL.iter().find(|v| v.name == name)
}

/// Whether a variable's value must never be printed.
pub fn is_secret(name: &str) -> bool {
    get(name).is_some_and(|v| v.kind == Kind::Secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_written_as_the_environment_spells_them() {
        let mut names: Vec<&str> = ALL.iter().map(|v| v.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a variable registered twice");
        for v in ALL {
            assert!(
                v.name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                v.name
            );
            assert!(!v.meaning.is_empty() && !v.by.is_empty(), "{}", v.name);
        }
        assert!(is_secret(HOTFIX_TOKEN) && !is_secret(HOTFIX_USER));
        assert_eq!(get("NOT_OURS"), None);
    }
}
