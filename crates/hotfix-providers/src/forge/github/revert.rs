//! Reverting a merged hotfix on GitHub: the GraphQL `revertPullRequest`
//! mutation (what `gh pr revert` does), or a pushed `git revert -m 1`
//! branch with its own PR, merged at once.

use super::*;

impl GithubForge {
    /// Runs a GraphQL operation; `errors[]` in a 200 answer is an error.
    pub(super) fn graphql(
        &self,
        what: &str,
        query: &str,
        variables: Value,
    ) -> Result<Value, ForgeError> {
        let url = self.cfg.graphql_endpoint();
        let body = json!({ "query": query, "variables": variables });
        // Not retried on 5xx: a mutation may have happened; the caller's
        // idempotency search finds its result on the next run instead.
        let resp = self.http.send("POST", &url, Some(&body), false)?;
        if resp.status != 200 {
            return Err(self.fail(what, &resp, None));
        }
        let v: Value = self.parse(what, &resp)?;
        if let Some(errs) = v.get("errors").and_then(Value::as_array)
            && !errs.is_empty()
        {
            let msgs: Vec<String> = errs
                .iter()
                .map(|e| {
                    let m = e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("(no message)");
                    match e.get("type").and_then(Value::as_str) {
                        Some(t) => format!("{t}: {m}"),
                        None => m.to_string(),
                    }
                })
                .collect();
            return Err(ForgeError::Other(format!(
                "{what}: GitHub GraphQL error: {}",
                self.http.scrub(&msgs.join("; "))
            )));
        }
        Ok(v.get("data").cloned().unwrap_or(Value::Null))
    }

    /// A revert PR made earlier for `merge_sha` (or for PR `source`): the
    /// trailer `Reverts-Merge: <sha>` in its body, or GitHub's own revert
    /// branch name `revert-<n>-…`. Looks at the 100 most recent PRs into
    /// `base`; closed-unmerged ones are ignored (someone abandoned them).
    pub(super) fn find_revert_pr(
        &self,
        base: &str,
        merge_sha: &str,
        source: Option<u64>,
    ) -> Result<Option<PrJson>, ForgeError> {
        let url = self.repo_url(&format!(
            "/pulls?state=all&base={}&sort=created&direction=desc&per_page=100",
            enc(base)
        ));
        let prs: Vec<PrJson> = self.get_json(&format!("list PRs into {base}"), &url, None)?;
        let trailer = revert_trailer(merge_sha);
        let prefix = source.map(|n| format!("revert-{n}-"));
        Ok(prs.into_iter().find(|p| {
            let by_trailer = p.body.as_deref().is_some_and(|b| b.contains(&trailer));
            let by_branch = prefix
                .as_deref()
                .is_some_and(|pre| p.head.name.starts_with(pre));
            (by_trailer || by_branch) && (p.state == "open" || p.is_merged())
        }))
    }

    /// Merges a revert PR, waiting (bounded) for GitHub to compute
    /// `mergeable` first: a fresh PR answers 405 while it is `null`.
    /// `expected` is the head we pushed ourselves (branch mode); otherwise
    /// the head GitHub reports for its own revert branch.
    pub(super) fn merge_revert_pr(
        &self,
        number: u64,
        expected: Option<&str>,
        message: &str,
    ) -> Result<String, ForgeError> {
        let mut pr = self.fetch_pr(number)?;
        let mut tries = 0;
        while pr.mergeable.is_none() && !pr.is_merged() && tries < self.cfg.max_retries {
            std::thread::sleep(Duration::from_secs(1).min(self.http.max_wait));
            pr = self.fetch_pr(number)?;
            tries += 1;
        }
        let head = expected.unwrap_or(&pr.head.sha).to_string();
        self.merge_fetched(pr, &head, message)
    }

    /// [`Forge::merge_pr`] of a PR just fetched.
    pub(super) fn merge_fetched(
        &self,
        pr: PrJson,
        expected_head: &str,
        message: &str,
    ) -> Result<String, ForgeError> {
        let number = pr.number;
        if pr.is_merged() {
            return pr.merge_commit_sha.ok_or_else(|| {
                ForgeError::Other(format!(
                    "PR #{number} is merged but GitHub gives no merge_commit_sha"
                ))
            });
        }
        if pr.state != "open" {
            return Err(ForgeError::NotMergeable(format!("PR #{number} is closed")));
        }
        let (title, body) = title_and_body(message);
        let req = json!({
            "sha": expected_head,
            "merge_method": self.cfg.merge_method.as_str(),
            "commit_title": title,
            "commit_message": body,
        });
        let resp = self.http.send(
            "PUT",
            &self.repo_url(&format!("/pulls/{number}/merge")),
            Some(&req),
            true,
        )?;
        let msg = self.http.scrub(&message_of(&resp.body));
        match resp.status {
            200 => {
                let v: Value = self.parse(&format!("merge PR #{number}"), &resp)?;
                v.get("sha")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ForgeError::Other(format!("merge PR #{number}: GitHub's answer has no sha"))
                    })
            }
            405 => {
                // Maybe merged meanwhile; otherwise say why not, as GitHub does.
                let now = self.fetch_pr(number)?;
                if now.is_merged()
                    && let Some(sha) = now.merge_commit_sha
                {
                    return Ok(sha);
                }
                let state = match now.mergeable_state.as_deref() {
                    Some("dirty") => " (mergeable_state: dirty — conflicts with the base branch)".to_string(),
                    Some("blocked") => " (mergeable_state: blocked — a required review or check is missing)".to_string(),
                    Some("behind") => " (mergeable_state: behind — the branch must be updated with the base first)".to_string(),
                    Some(s) => format!(" (mergeable_state: {s})"),
                    None => String::new(),
                };
                Err(ForgeError::NotMergeable(format!("GitHub: {msg}{state}")))
            }
            409 => {
                let now = self.fetch_pr(number)?;
                if now.is_merged()
                    && let Some(sha) = now.merge_commit_sha
                {
                    return Ok(sha);
                }
                Err(ForgeError::HeadMoved {
                    branch: now.head.name,
                    expected: expected_head.to_string(),
                    actual: now.head.sha,
                })
            }
            422 => Err(ForgeError::NotMergeable(format!(
                "GitHub refused the merge request (422: {msg}); check merge_method = \"{}\" is allowed on {}",
                self.cfg.merge_method.as_str(),
                self.cfg.repo
            ))),
            _ => Err(self.fail(&format!("merge PR #{number}"), &resp, Some(number))),
        }
    }

    pub(super) fn revert_graphql(
        &self,
        base: &str,
        merge_sha: &str,
        message: &str,
    ) -> Result<String, ForgeError> {
        // The PR whose merge commit this is.
        let prs: Vec<PrJson> = self.get_json(
            &format!("find the PR merged as {merge_sha}"),
            &self.repo_url(&format!("/commits/{}/pulls", enc(merge_sha))),
            None,
        )?;
        let source = prs
            .into_iter()
            .find(|p| p.is_merged() && p.merge_commit_sha.as_deref() == Some(merge_sha))
            .ok_or_else(|| {
                ForgeError::NotMergeable(format!(
                    "no merged pull request in {} has merge commit {merge_sha}; revert = \"branch\" can revert any merge commit",
                    self.cfg.repo
                ))
            })?;
        if let Some(existing) = self.find_revert_pr(base, merge_sha, Some(source.number))? {
            return self.merge_revert_pr(existing.number, None, message);
        }
        let node_id = source.node_id.clone().ok_or_else(|| {
            ForgeError::Other(format!(
                "PR #{} has no node_id in GitHub's answer",
                source.number
            ))
        })?;
        let (title, body) = title_and_body(message);
        let body = format!("{body}\n\n{}", revert_trailer(merge_sha))
            .trim()
            .to_string();
        let data = self.graphql(
            &format!("revert PR #{}", source.number),
            "mutation($id: ID!, $title: String, $body: String) { revertPullRequest(input: {pullRequestId: $id, title: $title, body: $body}) { revertPullRequest { number url } } }",
            json!({ "id": node_id, "title": title, "body": body }),
        )?;
        let number = data
            .pointer("/revertPullRequest/revertPullRequest/number")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                ForgeError::Other(format!(
                    "revert PR #{}: GitHub's answer has no revertPullRequest.number",
                    source.number
                ))
            })?;
        self.merge_revert_pr(number, None, message)
    }

    pub(super) fn revert_branch(
        &self,
        base: &str,
        merge_sha: &str,
        message: &str,
    ) -> Result<String, ForgeError> {
        let git = self.git.as_ref().ok_or_else(|| {
            ForgeError::Other("revert = \"branch\" needs the local git repository".into())
        })?;
        if let Some(existing) = self.find_revert_pr(base, merge_sha, None)? {
            return self.merge_revert_pr(existing.number, None, message);
        }
        let remote = &self.remote;
        let short: String = merge_sha.chars().take(12).collect();
        let branch = format!("hotfix-revert-{short}");
        let trailer = revert_trailer(merge_sha);
        let (title, body) = title_and_body(message);
        git.fetch(remote).map_err(git_err)?;
        let base_sha = git
            .rev_parse(&format!("refs/remotes/{remote}/{base}"))
            .map_err(git_err)?
            .ok_or_else(|| ForgeError::NotMergeable(format!("{remote} has no branch {base}")))?;
        if !git.is_ancestor(merge_sha, &base_sha).map_err(git_err)? {
            return Err(ForgeError::NotMergeable(format!(
                "{merge_sha} is not on {remote}/{base}: nothing to revert there"
            )));
        }
        // A revert branch pushed by an earlier run that stopped before the PR.
        let pushed = git
            .rev_parse(&format!("refs/remotes/{remote}/{branch}"))
            .map_err(git_err)?;
        let head = match pushed {
            Some(sha)
                if git
                    .find_commit_with(&format!("{base_sha}..{sha}"), &trailer)
                    .map_err(git_err)?
                    .is_some() =>
            {
                sha
            }
            _ => {
                let parent = format!("{merge_sha}^1");
                let tree = match git
                    .merge_tree(&base_sha, &parent, Some(merge_sha))
                    .map_err(git_err)?
                {
                    MergeTree::Clean { tree } => tree,
                    MergeTree::Conflicted { files } => return Err(ForgeError::Conflict(files)),
                };
                let full = format!("{}\n\n{trailer}\n", message.trim());
                let commit = git
                    .commit_tree(&tree, &[&base_sha], &full)
                    .map_err(git_err)?;
                let refspec = format!("+{commit}:refs/heads/{branch}");
                git.push(remote, &[refspec], false, &[]).map_err(git_err)?;
                commit
            }
        };
        let pr = self.open_pr(&NewPr {
            title,
            body: format!("{body}\n\n{trailer}").trim().to_string(),
            head: branch,
            base: base.to_string(),
        })?;
        if let (PrState::Merged, Some(sha)) = (&pr.state, &pr.merge_sha) {
            return Ok(sha.clone());
        }
        self.merge_revert_pr(pr.number, Some(&head), message)
    }
}
