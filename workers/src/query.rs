//! The rows of one export, read from one consistent PostgreSQL snapshot.
//!
//! Every query here is scoped by `user_id` and excludes soft-deleted jobs; there is no way to
//! build one that is not. Filter values are bound parameters; the SQL text is made only from
//! constant fragments and [`Field`] names.

use chrono::{DateTime, Utc};
use futures::{Stream, TryStreamExt};
use sqlx::postgres::{PgArguments, PgPool};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::filters::ExportFilters;
use crate::job::{Field, JobRecord};

/// What to export: whose jobs, which of them, which fields, and at most how many.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportQuery {
    pub user_id: Uuid,
    pub filters: ExportFilters,
    /// Selected fields, in output order.
    pub fields: Vec<Field>,
    /// At most this many rows (newest first); `None` for all.
    pub limit: Option<u64>,
}

enum Bind {
    Uuid(Uuid),
    Texts(Vec<String>),
    Time(DateTime<Utc>),
}

impl ExportQuery {
    /// `FROM jobs WHERE ...` and the values it binds, in placeholder order.
    fn scope_sql(&self) -> (String, Vec<Bind>) {
        let f = &self.filters;
        let mut sql = String::from(" FROM jobs WHERE user_id = $1 AND deleted_at IS NULL");
        let mut binds = vec![Bind::Uuid(self.user_id)];
        let mut push = |sql_fragment: &str, bind: Bind| {
            binds.push(bind);
            sql.push_str(&sql_fragment.replace('?', &format!("${}", binds.len())));
        };
        if !f.status.is_empty() {
            let statuses = f.status.iter().map(|s| s.as_str().to_owned()).collect();
            push(" AND status = ANY(?)", Bind::Texts(statuses));
        }
        if !f.source.is_empty() {
            push(" AND source = ANY(?)", Bind::Texts(f.source.clone()));
        }
        if !f.tag.is_empty() {
            push(" AND tags @> ?", Bind::Texts(f.tag.clone()));
        }
        if let Some(t) = f.created_from {
            push(" AND created_at >= ?", Bind::Time(t));
        }
        if let Some(t) = f.created_to {
            push(" AND created_at < ?", Bind::Time(t));
        }
        if let Some(t) = f.updated_since {
            push(" AND updated_at >= ?", Bind::Time(t));
        }
        (sql, binds)
    }

    fn count_sql(&self) -> (String, Vec<Bind>) {
        let (from_where, binds) = self.scope_sql();
        (format!("SELECT count(*), now(){from_where}"), binds)
    }

    /// The statement the rows are read with, and how many values it binds. Its text is made
    /// of constant fragments and field names only: every filter value is a `$n` placeholder,
    /// so no value can change it (the `filters` fuzz target checks exactly that).
    #[cfg(fuzzing)]
    pub fn select_statement(&self) -> (String, usize) {
        let (sql, binds) = self.select_sql();
        (sql, binds.len())
    }

    fn select_sql(&self) -> (String, Vec<Bind>) {
        let columns: Vec<&str> = self.fields.iter().map(|f| f.name()).collect();
        let (from_where, binds) = self.scope_sql();
        let mut sql = format!(
            "SELECT {}{from_where} ORDER BY created_at DESC, id DESC",
            columns.join(", ")
        );
        if let Some(limit) = self.limit {
            // A number of our own, not user text: safe to write into the statement.
            sql.push_str(&format!(
                " LIMIT {}",
                i64::try_from(limit).unwrap_or(i64::MAX)
            ));
        }
        (sql, binds)
    }
}

fn bound(sql: String, binds: Vec<Bind>) -> Query<'static, Postgres, PgArguments> {
    binds
        .into_iter()
        .fold(sqlx::query(AssertSqlSafe(sql)), |q, b| match b {
            Bind::Uuid(v) => q.bind(v),
            Bind::Texts(v) => q.bind(v),
            Bind::Time(v) => q.bind(v),
        })
}

/// A read-only REPEATABLE READ transaction holding one export's view of the data: the count
/// and the rows come from the same snapshot, so a file's `total` always matches its rows.
pub struct Snapshot {
    tx: Transaction<'static, Postgres>,
    query: ExportQuery,
    matching: u64,
    taken_at: DateTime<Utc>,
}

impl Snapshot {
    /// Opens the snapshot and counts the matching rows.
    pub async fn open(pool: &PgPool, query: ExportQuery) -> Result<Snapshot, sqlx::Error> {
        let mut tx = pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let (sql, binds) = query.count_sql();
        let row = bound(sql, binds).fetch_one(&mut *tx).await?;
        let matching: i64 = row.try_get(0)?;
        let taken_at: DateTime<Utc> = row.try_get(1)?;
        Ok(Snapshot {
            tx,
            query,
            matching: u64::try_from(matching).unwrap_or(0),
            taken_at,
        })
    }

    /// All rows that match the filters, ignoring the limit.
    pub fn matching(&self) -> u64 {
        self.matching
    }

    /// The rows the export will contain: the matching rows, capped by the limit.
    pub fn exported(&self) -> u64 {
        self.query
            .limit
            .map_or(self.matching, |limit| self.matching.min(limit))
    }

    /// The instant the snapshot was taken (the database's transaction time).
    pub fn taken_at(&self) -> DateTime<Utc> {
        self.taken_at
    }

    pub fn query(&self) -> &ExportQuery {
        &self.query
    }

    /// Streams the rows, newest `created_at` first. The database sends rows as they are
    /// consumed; nothing is collected.
    pub fn rows(&mut self) -> impl Stream<Item = Result<JobRecord, sqlx::Error>> + Send + '_ {
        let Snapshot { tx, query, .. } = self;
        let (sql, binds) = query.select_sql();
        let fields = &query.fields;
        bound(sql, binds)
            .fetch(&mut **tx)
            .and_then(move |row| std::future::ready(JobRecord::decode(&row, fields)))
    }

    /// Ends the transaction.
    pub async fn close(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::Status;

    fn query(filters: ExportFilters, limit: Option<u64>) -> ExportQuery {
        ExportQuery {
            user_id: Uuid::nil(),
            filters,
            fields: vec![Field::Id, Field::Tags],
            limit,
        }
    }

    #[test]
    fn every_query_is_scoped_to_the_user_and_live_rows() {
        let (sql, binds) = query(ExportFilters::default(), None).select_sql();
        assert_eq!(
            sql,
            "SELECT id, tags FROM jobs WHERE user_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id DESC"
        );
        assert_eq!(binds.len(), 1);
    }

    #[test]
    fn filters_become_numbered_placeholders() {
        let filters = ExportFilters {
            status: vec![Status::Offer],
            source: vec!["x'; DROP TABLE jobs; --".into()],
            tag: vec!["a".into()],
            created_from: Some(DateTime::<Utc>::MIN_UTC),
            created_to: Some(DateTime::<Utc>::MAX_UTC),
            updated_since: Some(DateTime::<Utc>::MIN_UTC),
        };
        let (sql, binds) = query(filters, Some(10)).select_sql();
        assert_eq!(
            sql,
            "SELECT id, tags FROM jobs WHERE user_id = $1 AND deleted_at IS NULL \
             AND status = ANY($2) AND source = ANY($3) AND tags @> $4 AND created_at >= $5 \
             AND created_at < $6 AND updated_at >= $7 ORDER BY created_at DESC, id DESC LIMIT 10"
        );
        assert_eq!(binds.len(), 7);
        assert!(!sql.contains("DROP"));
    }
}
