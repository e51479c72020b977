use uuid::Uuid;

use crate::helpers::{NewJob, TestApp, TestUser, at, error_of};

struct Fixture {
    app: TestApp,
    user: TestUser,
    /// saved/linkedin/[a], Jan 1
    saved: Uuid,
    /// applied/indeed/[a, b], Feb 1 00:00:00.000001
    applied: Uuid,
    /// offer/NULL source/[b], Mar 1, updated Mar 10
    offer: Uuid,
    /// rejected/linkedin/[], Apr 1
    rejected: Uuid,
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let job = |status: &str, source: Option<&str>, tags: &[&str], created: &str| NewJob {
        status: status.into(),
        source: source.map(str::to_owned),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        created_at: Some(at(created)),
        updated_at: Some(at(created)),
        ..NewJob::default()
    };
    let saved = app
        .insert_job(
            &user,
            job("saved", Some("linkedin"), &["a"], "2026-01-01T00:00:00Z"),
        )
        .await;
    let applied = app
        .insert_job(
            &user,
            job(
                "applied",
                Some("indeed"),
                &["a", "b"],
                "2026-02-01T00:00:00.000001Z",
            ),
        )
        .await;
    let offer = app
        .insert_job(
            &user,
            NewJob {
                updated_at: Some(at("2026-03-10T00:00:00Z")),
                ..job("offer", None, &["b"], "2026-03-01T00:00:00Z")
            },
        )
        .await;
    let rejected = app
        .insert_job(
            &user,
            job("rejected", Some("linkedin"), &[], "2026-04-01T00:00:00Z"),
        )
        .await;
    // Another user's matching job must never show up.
    let other = app.create_user().await;
    app.insert_job(
        &other,
        job(
            "offer",
            Some("linkedin"),
            &["a", "b"],
            "2026-03-01T00:00:00Z",
        ),
    )
    .await;
    Fixture {
        app,
        user,
        saved,
        applied,
        offer,
        rejected,
    }
}

impl Fixture {
    async fn ids(&self, query: &str) -> Vec<Uuid> {
        self.app.exported_ids(&self.user.token, query).await
    }

    async fn csv_rows(&self, query: &str) -> usize {
        let text = self
            .app
            .export(&self.user.token, &format!("format=csv&{query}"))
            .await
            .text()
            .await
            .unwrap();
        csv::Reader::from_reader(text.as_bytes()).records().count()
    }
}

#[tokio::test]
async fn each_filter_narrows_the_export() {
    let f = fixture().await;
    let (saved, applied, offer, rejected) = (f.saved, f.applied, f.offer, f.rejected);
    let cases: Vec<(&str, Vec<Uuid>)> = vec![
        ("", vec![rejected, offer, applied, saved]),
        ("status=offer", vec![offer]),
        ("status=offer,saved", vec![offer, saved]),
        ("status=offer&status=saved", vec![offer, saved]),
        ("status=interview", vec![]),
        ("source=linkedin", vec![rejected, saved]),
        ("source=linkedin,indeed", vec![rejected, applied, saved]),
        ("tag=a", vec![applied, saved]),
        ("tag=a&tag=b", vec![applied]),
        ("tag=b", vec![offer, applied]),
        ("created_from=2026-02-01", vec![rejected, offer, applied]),
        (
            "created_from=2026-02-01T00:00:00.000001Z",
            vec![rejected, offer, applied],
        ),
        (
            "created_from=2026-02-01T00:00:00.000002Z",
            vec![rejected, offer],
        ),
        ("created_to=2026-03-01", vec![applied, saved]),
        (
            "created_to=2026-03-01T00:00:00.000001Z",
            vec![offer, applied, saved],
        ),
        (
            "created_from=2026-01-15&created_to=2026-03-15",
            vec![offer, applied],
        ),
        (
            "created_from=2026-02-01T02:00:00%2B02:00",
            vec![rejected, offer, applied],
        ),
        ("updated_since=2026-03-05", vec![rejected, offer]),
        ("status=offer,rejected&source=linkedin", vec![rejected]),
        ("status=saved&tag=b", vec![]),
    ];
    for (query, expected) in cases {
        assert_eq!(f.ids(query).await, expected, "{query}");
        assert_eq!(f.csv_rows(query).await, expected.len(), "csv {query}");
        let body = f.app.export_json(&f.user.token, query).await;
        assert_eq!(body["total"], expected.len(), "total for {query}");
    }
}

#[tokio::test]
async fn invalid_filters_name_the_parameter() {
    let f = fixture().await;
    let cases = [
        ("status=hired", "status"),
        ("status=", "status"),
        ("status=offer,,saved", "status"),
        ("source=", "source"),
        ("tag=", "tag"),
        ("created_from=yesterday", "created_from"),
        ("created_from=2026-13-01", "created_from"),
        ("created_to=2026-02-30", "created_to"),
        ("updated_since=1700000000", "updated_since"),
        (
            "created_from=2026-03-01&created_to=2026-02-01",
            "created_to",
        ),
        (
            "created_from=2026-01-01&created_from=2026-01-02",
            "created_from",
        ),
        ("user_id=00000000-0000-0000-0000-000000000000", "user_id"),
        ("limit=5", "limit"),
        ("source=x'%3B%20DROP%20TABLE%20jobs%3B--&bogus=1", "bogus"),
    ];
    for (query, param) in cases {
        let (code, message) = error_of(f.app.export(&f.user.token, query).await, 400).await;
        assert_eq!(code, "VALIDATION_ERROR", "{query}");
        assert!(
            message.contains(param),
            "{query}: {message:?} should name {param}"
        );
    }
    // An injection attempt as a value is just a value that matches nothing.
    assert!(
        f.ids("source=x'%3B%20DROP%20TABLE%20jobs%3B--")
            .await
            .is_empty()
    );
    assert_eq!(f.ids("").await.len(), 4);
}
