//! File formats and their options, read back with real parsers: the `csv` crate for every
//! delimiter, with and without BOM and formula neutralisation; serde for NDJSON; and the
//! same options through a background export, byte for byte equal to the sync endpoint's.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, error_of, gunzip};

/// A user with seeded jobs plus one whose text could be a spreadsheet formula and is not
/// Latin.
async fn user_with_tricky_job(app: &TestApp) -> TestUser {
    let user = app.create_user().await;
    app.seed_jobs(&user, 25, 9).await;
    sqlx::query(
        "INSERT INTO jobs (user_id, company_name, job_title, status, notes, location, tags, salary_range_min) \
         VALUES ($1, '=HYPERLINK(\"http://evil.example\",\"click\")', '+Ingénieur; \"senior\"', 'applied', \
                 '-5 points,\r\nmulti-line', '東京都, 日本', ARRAY['@risky','ok'], -100)",
    )
    .bind(user.id)
    .execute(&app.pool)
    .await
    .unwrap();
    user
}

async fn body(app: &TestApp, token: &str, query: &str) -> Vec<u8> {
    let response = app.export(token, query).await;
    assert_eq!(response.status(), 200, "{query}");
    response.bytes().await.unwrap().to_vec()
}

/// The JSON export's jobs: what every other format is compared with.
async fn json_jobs(app: &TestApp, token: &str) -> Vec<Value> {
    app.export_json(token, "format=json").await["jobs"]
        .as_array()
        .unwrap()
        .clone()
}

/// How a JSON value appears in a CSV cell.
fn csv_cell(v: &Value, escape: bool) -> String {
    let text = |s: String| {
        if escape && s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{s}")
        } else {
            s
        }
    };
    match v {
        Value::Null => String::new(),
        Value::String(s) => text(s.clone()),
        Value::Array(tags) => text(
            tags.iter()
                .map(|t| t.as_str().unwrap())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn csv_reads_back_with_every_delimiter_bom_and_escaping() {
    let app = TestApp::spawn().await;
    let user = user_with_tricky_job(&app).await;
    let jobs = json_jobs(&app, &user.token).await;
    let fields = [
        "company_name",
        "job_title",
        "notes",
        "location",
        "tags",
        "salary_range_min",
        "id",
    ];

    for (delimiter, byte) in [("comma", b','), ("semicolon", b';'), ("tab", b'\t')] {
        for bom in [false, true] {
            for escape in [true, false] {
                let query = format!(
                    "format=csv&fields={}&delimiter={delimiter}&bom={bom}&escape_formulas={escape}",
                    fields.join(",")
                );
                let bytes = body(&app, &user.token, &query).await;
                assert_eq!(bytes.starts_with("\u{feff}".as_bytes()), bom, "{query}");
                let mut reader = csv::ReaderBuilder::new()
                    .delimiter(byte)
                    .from_reader(bytes.as_slice());
                let header: Vec<String> = reader
                    .headers()
                    .unwrap()
                    .iter()
                    .map(str::to_owned)
                    .collect();
                assert_eq!(header, fields, "{query}");
                let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
                assert_eq!(rows.len(), jobs.len(), "{query}");
                for (row, job) in rows.iter().zip(&jobs) {
                    for (i, field) in fields.iter().enumerate() {
                        assert_eq!(
                            &row[i],
                            csv_cell(&job[*field], escape),
                            "{query}: {field} of {}",
                            job["id"]
                        );
                    }
                }
            }
        }
    }
    // The tricky row, by eye: neutralised text, the number untouched, non-Latin text intact.
    let csv = String::from_utf8(
        body(
            &app,
            &user.token,
            "format=csv&fields=company_name,location,salary_range_min,tags",
        )
        .await,
    )
    .unwrap();
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\",\"東京都, 日本\",-100,'@risky; ok\r\n"),
        "{csv}"
    );
}

#[tokio::test]
async fn fields_choose_and_order_the_columns_in_every_format() {
    let app = TestApp::spawn().await;
    let user = user_with_tricky_job(&app).await;
    let jobs = json_jobs(&app, &user.token).await;

    let query = "format=json&fields=status,company_name,id";
    let raw = String::from_utf8(body(&app, &user.token, query).await).unwrap();
    let chosen: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(chosen["total"], jobs.len());
    for (job, full) in chosen["jobs"].as_array().unwrap().iter().zip(&jobs) {
        let expected = json!({"status": full["status"], "company_name": full["company_name"], "id": full["id"]});
        assert_eq!(job, &expected);
    }
    // The caller's order, in the bytes (a parsed map would not show it).
    let first = &raw[raw.find("\"jobs\"").unwrap()..];
    let at = |key: &str| first.find(&format!("\"{key}\":")).unwrap();
    assert!(
        at("status") < at("company_name") && at("company_name") < at("id"),
        "{first}"
    );

    let ndjson =
        String::from_utf8(body(&app, &user.token, "format=ndjson&fields=id&fields=tags").await)
            .unwrap();
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), jobs.len());
    for (line, job) in lines.iter().zip(&jobs) {
        assert_eq!(line, &json!({"id": job["id"], "tags": job["tags"]}));
    }

    for (query, field) in [
        ("fields=salary", "salary"),
        ("fields=id,user_id", "user_id"),
        ("fields=id,id", "id"),
        ("fields=", "fields"),
    ] {
        let (code, message) = error_of(app.export(&user.token, query).await, 400).await;
        assert_eq!(code, "VALIDATION_ERROR");
        assert!(
            message.starts_with("fields") && message.contains(field),
            "{query}: {message}"
        );
    }
    let (_, message) = error_of(app.export(&user.token, "format=json&bom=true").await, 400).await;
    assert!(message.contains("only to format=csv"), "{message}");
}

#[tokio::test]
async fn ndjson_is_the_json_exports_jobs_one_per_line() {
    let app = TestApp::spawn().await;
    let user = user_with_tricky_job(&app).await;
    let response = app.export(&user.token, "format=ndjson").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.ends_with(".ndjson\""), "{disposition}");
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, json_jobs(&app, &user.token).await);
}

#[tokio::test]
async fn background_exports_take_the_same_options_and_write_the_same_bytes() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = user_with_tricky_job(&app).await;
    let created = app
        .start_export(
            &user.token,
            json!({"format": "csv", "fields": ["location", "company_name", "tags"],
                   "delimiter": "semicolon", "bom": true}),
        )
        .await;
    assert_eq!(
        created["fields"],
        json!(["location", "company_name", "tags"])
    );
    assert_eq!(
        created["csv"],
        json!({"delimiter": "semicolon", "bom": true, "escape_formulas": true})
    );
    let done = app
        .wait_finished(&user.token, created["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let stored = reqwest::get(done["download_url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let sync = body(
        &app,
        &user.token,
        "format=csv&fields=location,company_name,tags&delimiter=semicolon&bom=true",
    )
    .await;
    assert_eq!(gunzip(&stored), sync);

    for (bad, field) in [
        (json!({"format": "csv", "fields": ["nope"]}), "fields"),
        (json!({"format": "csv", "delimiter": "|"}), "delimiter"),
        (json!({"format": "json", "bom": true}), "bom"),
        (json!({"format": "csv", "fields": "id"}), "fields"),
    ] {
        let (code, message) =
            error_of(app.create_export(&user.token, bad.clone(), None).await, 400).await;
        assert_eq!(code, "VALIDATION_ERROR");
        assert!(message.contains(field), "{bad}: {message}");
    }
}

/// The `Jobs` and `Export` sheets of a workbook.
fn read_xlsx(bytes: &[u8]) -> (Vec<Vec<calamine::Data>>, Vec<Vec<calamine::Data>>) {
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(book.sheet_names(), ["Jobs", "Export"]);
    let rows = |r: calamine::Range<calamine::Data>| r.rows().map(<[_]>::to_vec).collect::<Vec<_>>();
    (
        rows(book.worksheet_range("Jobs").unwrap()),
        rows(book.worksheet_range("Export").unwrap()),
    )
}

/// Checks a workbook's `Jobs` sheet against the JSON export, cell by cell and type by type.
fn assert_sheet_matches(sheet: &[Vec<calamine::Data>], fields: &[&str], jobs: &[Value]) {
    use calamine::Data;
    let header: Vec<String> = sheet[0].iter().map(|c| c.to_string()).collect();
    assert_eq!(header, fields);
    assert_eq!(
        sheet.len(),
        jobs.len() + 1,
        "a row per job after the header"
    );
    for (row, job) in sheet[1..].iter().zip(jobs) {
        for (i, field) in fields.iter().enumerate() {
            let cell = row.get(i).cloned().unwrap_or(Data::Empty);
            let expected = &job[*field];
            match (expected, &cell) {
                (Value::Null, Data::Empty) => {}
                // A spreadsheet has no empty text: "" is a blank cell, like NULL.
                (Value::String(s), Data::Empty) if s.is_empty() => {}
                (Value::Array(tags), Data::Empty) => assert!(tags.is_empty()),
                (Value::Array(tags), Data::String(s)) => {
                    let joined: Vec<&str> = tags.iter().map(|t| t.as_str().unwrap()).collect();
                    assert_eq!(s, &joined.join("; "));
                }
                (Value::Bool(b), Data::Bool(c)) => assert_eq!(b, c),
                (Value::Number(n), Data::Float(f)) => assert_eq!(n.as_f64().unwrap(), *f),
                (Value::String(s), Data::DateTime(t)) => {
                    let want = crate::helpers::at(s).naive_utc();
                    let got = t.as_datetime().unwrap();
                    let off = (want - got).num_microseconds().unwrap().abs();
                    assert!(off <= 1_000, "{field}: {want} vs {got}");
                }
                (Value::String(s), Data::String(c)) => assert_eq!(s, c, "{field}"),
                (e, c) => panic!("{field}: {e} written as {c:?}"),
            }
        }
    }
}

#[tokio::test]
async fn xlsx_is_a_typed_workbook_with_its_metadata() {
    let app = TestApp::spawn().await;
    let user = user_with_tricky_job(&app).await;
    let jobs = json_jobs(&app, &user.token).await;
    let response = app.export(&user.token, "format=xlsx").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.ends_with(".xlsx\""), "{disposition}");
    let bytes = response.bytes().await.unwrap();
    let (sheet, about) = read_xlsx(&bytes);
    let csv_fields: Vec<&str> = workers::Field::CSV.iter().map(|f| f.name()).collect();
    assert_sheet_matches(&sheet, &csv_fields, &jobs);
    // The formula-like text is a plain string cell, exactly as stored.
    assert!(
        sheet.iter().any(|r| r[1]
            == calamine::Data::String("=HYPERLINK(\"http://evil.example\",\"click\")".into()))
    );
    let about: Vec<(String, String)> = about
        .iter()
        .map(|r| (r[0].to_string(), r[1].to_string()))
        .collect();
    assert_eq!(about[1], ("Jobs".to_owned(), jobs.len().to_string()));
    assert_eq!(about[0].0, "Exported at");

    // Chosen fields, filtered; the metadata sheet names the filters.
    let bytes = body(
        &app,
        &user.token,
        "format=xlsx&fields=company_name,is_remote,created_at&status=applied",
    )
    .await;
    let (sheet, about) = read_xlsx(&bytes);
    let applied: Vec<Value> = jobs
        .iter()
        .filter(|j| j["status"] == "applied")
        .cloned()
        .collect();
    assert_sheet_matches(
        &sheet,
        &["company_name", "is_remote", "created_at"],
        &applied,
    );
    assert!(
        about[2][1].to_string().contains("applied"),
        "{:?}",
        about[2]
    );
}

#[tokio::test]
async fn background_xlsx_exports_are_the_same_workbook() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = user_with_tricky_job(&app).await;
    let jobs = json_jobs(&app, &user.token).await;
    let created = app
        .start_export(
            &user.token,
            json!({"format": "xlsx", "compression": "none"}),
        )
        .await;
    let done = app
        .wait_finished(&user.token, created["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["file_name"].as_str().unwrap().ends_with(".xlsx"));
    let stored = reqwest::get(done["download_url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (sheet, _) = read_xlsx(&stored);
    let csv_fields: Vec<&str> = workers::Field::CSV.iter().map(|f| f.name()).collect();
    assert_sheet_matches(&sheet, &csv_fields, &jobs);
}
