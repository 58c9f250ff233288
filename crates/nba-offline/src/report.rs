//! The HTML report of a backtest: one self-contained page (inline SVG, no
//! script) that can be mailed or archived next to the recording.

use nba_core::estimators::{Caveat, Estimate};
use nba_metrics::{
    ForestRow, escape, forest_plot_svg, html_page, line_chart_svg, percentile_plot_svg,
};
use nba_pipeline::BacktestRun;

use crate::Evaluation;

/// The HTML report of a backtest (`nba backtest --report`): its figures,
/// the cumulative decisions and rewards over event time, the decision
/// latency, the experiment's arms with a forest plot, the shadow policies'
/// estimates with their warnings, and each candidate's
/// estimates with a forest plot against the logged policy's value. A
/// section with nothing to show says why in a sentence.
pub fn backtest_report_html(run: &BacktestRun, evaluation: Option<&Evaluation>) -> String {
    let t0 = run.timeline.first().map_or(0, |p| p.0);
    let hours = |t: i64| (t - t0) as f64 / 3_600_000.0;
    let curves = vec![
        (
            "decisions".to_owned(),
            run.timeline
                .iter()
                .map(|p| (hours(p.0), p.1 as f64))
                .collect(),
        ),
        (
            "rewards".to_owned(),
            run.timeline
                .iter()
                .map(|p| (hours(p.0), p.2 as f64))
                .collect(),
        ),
    ];
    let mut body = format!(
        "<p>{} raw records, {} decisions, {} rewards, {} dead letters in {:.2} s ({:.0} events/s); decision latency p50 {} µs, p99 {} µs.</p>",
        run.events,
        run.decision_count,
        run.rewards,
        run.dead_lettered,
        run.elapsed_s,
        run.events_per_s,
        run.decision_latency_p50_us,
        run.decision_latency_p99_us
    );
    body.push_str("<h2>Cumulative decisions and rewards over event time</h2>");
    if run.timeline.is_empty() {
        body.push_str("<p>No decision and no reward in this run: nothing to plot.</p>");
    } else {
        body.push_str(&line_chart_svg(
            "event time, hours from the first record",
            "count",
            &curves,
        ));
    }
    body.push_str("<h2>Decision latency (request in, next-best-action encoded)</h2>");
    if run.decision_latency.count() == 0 {
        body.push_str("<p>No decision was made: no latency to show.</p>");
    } else {
        body.push_str(&percentile_plot_svg(&[(
            "decision".to_owned(),
            &run.decision_latency,
        )]));
    }
    let pair = |v: Option<[f64; 3]>| {
        v.map_or(("-".to_owned(), "-".to_owned()), |[m, low, high]| {
            (format!("{m:.5}"), format!("[{low:.5}, {high:.5}]"))
        })
    };
    if !run.experiment.is_empty() {
        body.push_str("<h2>Experiment arms (as this backtest decided)</h2><table><tr><th>arm</th><th>decisions</th><th>rewards joined</th><th>mean reward</th><th>95% interval</th><th>mean value</th><th>vs champion</th><th>95% interval</th></tr>");
        for a in &run.experiment {
            let (mean, interval) = pair(a.mean_reward);
            let (difference, difference_interval) = pair(a.difference);
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{mean}</td><td>{interval}</td><td>{}</td><td>{difference}</td><td>{difference_interval}</td></tr>",
                escape(&a.arm),
                a.figures.decisions,
                a.figures.rewards_joined,
                a.mean_value.map_or("-".to_owned(), |v| format!("{v:.3}")),
            ));
        }
        body.push_str("</table>");
        body.push_str(match run.experiment.first().and_then(|a| a.customers) {
            Some(_) => "<p>Intervals take the customer as the unit: a customer stays in one arm, and one customer's decisions are not independent of each other.</p>",
            None => "<p>Intervals take every decision as independent; a customer stays in one arm, so with few customers deciding often they are too narrow.</p>",
        });
        let rows: Vec<ForestRow> = run
            .experiment
            .iter()
            .filter(|a| a.figures.rewards_joined > 0)
            .filter_map(|a| {
                a.mean_reward
                    .map(|[m, low, high]| (a.arm.clone(), m, [low, high]))
            })
            .collect();
        if rows.is_empty() {
            body.push_str("<p>No arm has a joined outcome yet: nothing to plot.</p>");
        } else {
            body.push_str(&forest_plot_svg(
                "mean reward per closed decision",
                &rows,
                None,
            ));
        }
    }
    if !run.shadows.is_empty() {
        body.push_str("<h2>Shadow policies (as the live model-updater would have scored them)</h2><table><tr><th>shadow</th><th>scored</th><th>agreed</th><th>learned from</th><th>IPS</th><th>95% interval</th><th>SNIPS</th><th>95% interval</th><th>mean weight (expected 1)</th><th>effective sample size</th><th>warning</th></tr>");
        for shadow in &run.shadows {
            let f = &shadow.figures;
            let (ips, ips_interval) = pair(shadow.ips);
            let (snips, snips_interval) = pair(shadow.snips);
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{ips}</td><td>{ips_interval}</td><td>{snips}</td><td>{snips_interval}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&shadow.shadow),
                f.scored,
                f.agreed,
                f.learned,
                shadow
                    .mean_weight
                    .map_or("-".to_owned(), |[w, low, high]| format!("{w:.3} [{low:.3}, {high:.3}]")),
                shadow
                    .effective_sample_size
                    .map_or("-".to_owned(), |n| format!("{n:.0}")),
                shadow.caveat.map_or("", Caveat::explain),
            ));
        }
        body.push_str("</table><p>A shadow's estimate is of the policy as it ran in the shadow, learning from the champion's outcomes: it is near what the policy earns deployed only if it explores no more than the champion, and only while IPS and SNIPS agree (deploy/README.md, \"Shadow policies\").</p>");
    }
    body.push_str("<h2>Candidate policies, evaluated off-policy</h2>");
    match evaluation {
        None => body.push_str("<p>The recording holds no logged decisions, so no candidate was evaluated: record nba.decision-requests, nba.next-best-actions and nba.rewards with the raw topic (nba record does) to compare policies.</p>"),
        Some(e) if e.candidates.is_empty() => body.push_str("<p>No candidate policy was given.</p>"),
        Some(e) => {
            let rows: Vec<ForestRow> = e
                .candidates
                .iter()
                .flat_map(|c| {
                    c.estimates.iter().map(|x| {
                        (
                            format!("{} {}", c.name, x.estimator.name()),
                            x.value,
                            [x.ci_low, x.ci_high],
                        )
                    })
                })
                .collect();
            body.push_str(&forest_plot_svg(
                "estimated reward per decision (95% interval)",
                &rows,
                Some(("logged policy", e.logged_value)),
            ));
        }
    }
    if let Some(e) = evaluation {
        let table = |body: &mut String, estimates: &mut dyn Iterator<Item = (&str, &Estimate)>| {
            body.push_str("<table><tr><th>candidate</th><th>estimator</th><th>value</th><th>95% interval</th><th>effective sample size</th><th>warning</th></tr>");
            for (name, x) in estimates {
                body.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{:.5}</td><td>[{:.5}, {:.5}]</td><td>{}</td><td>{}</td></tr>",
                    escape(name),
                    x.estimator.name(),
                    x.value,
                    x.ci_low,
                    x.ci_high,
                    if x.effective_sample_size.is_nan() {
                        "-".to_owned()
                    } else {
                        format!("{:.1}", x.effective_sample_size)
                    },
                    x.caveat.map_or("", |c| c.explain())
                ));
            }
            body.push_str("</table>");
        };
        body.push_str(&format!(
            "<h2>Candidates against {} logged decisions</h2><p>Logged policy's mean reward: {:.5}</p>",
            e.decisions, e.logged_value
        ));
        table(
            &mut body,
            &mut e
                .candidates
                .iter()
                .flat_map(|c| c.estimates.iter().map(|x| (c.name.as_str(), x))),
        );
        if let Some(logged) = e.logged_value_earned {
            // What a candidate choosing by value maximises.
            let earned = || {
                e.candidates
                    .iter()
                    .flat_map(|c| c.earned.iter().flatten().map(|x| (c.name.as_str(), x)))
            };
            body.push_str(&format!(
                "<h2>Candidates that choose by value, in value</h2><p>Value earned per decision (reward × the sent action's value); the logged policy's: {logged:.5}</p>"
            ));
            let rows: Vec<ForestRow> = earned()
                .map(|(name, x)| {
                    (
                        format!("{name} {}", x.estimator.name()),
                        x.value,
                        [x.ci_low, x.ci_high],
                    )
                })
                .collect();
            body.push_str(&forest_plot_svg(
                "estimated value earned per decision (95% interval)",
                &rows,
                Some(("logged policy", logged)),
            ));
            table(&mut body, &mut earned());
        }
    }
    html_page("nba backtest", &body)
}
