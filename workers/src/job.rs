//! A job as exports see it: the exportable fields, in the documented order, and one decoded row.
//!
//! Internal columns (`user_id`, `ai_parsed_data`, `last_synced_at`, `deleted_at`) have no
//! [`Field`], so no export can ever select them.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

/// A field an export may contain. The declaration order is the documented JSON order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Id,
    CompanyName,
    JobTitle,
    Status,
    Source,
    Location,
    IsRemote,
    JobUrl,
    JobDescription,
    SalaryRangeMin,
    SalaryRangeMax,
    AiMatchScore,
    AiReasoning,
    Notes,
    Tags,
    AppliedAt,
    InterviewAt,
    OfferAt,
    RejectedAt,
    ScrapedAt,
    CreatedAt,
    UpdatedAt,
}

impl Field {
    /// Every exportable field, in the documented JSON order (22 fields).
    pub const ALL: [Field; 22] = [
        Field::Id,
        Field::CompanyName,
        Field::JobTitle,
        Field::Status,
        Field::Source,
        Field::Location,
        Field::IsRemote,
        Field::JobUrl,
        Field::JobDescription,
        Field::SalaryRangeMin,
        Field::SalaryRangeMax,
        Field::AiMatchScore,
        Field::AiReasoning,
        Field::Notes,
        Field::Tags,
        Field::AppliedAt,
        Field::InterviewAt,
        Field::OfferAt,
        Field::RejectedAt,
        Field::ScrapedAt,
        Field::CreatedAt,
        Field::UpdatedAt,
    ];

    /// The documented CSV columns, in order (19 fields: no `job_description`,
    /// `ai_reasoning` or `scraped_at`).
    pub const CSV: [Field; 19] = [
        Field::Id,
        Field::CompanyName,
        Field::JobTitle,
        Field::Status,
        Field::Source,
        Field::Location,
        Field::IsRemote,
        Field::JobUrl,
        Field::SalaryRangeMin,
        Field::SalaryRangeMax,
        Field::AiMatchScore,
        Field::Notes,
        Field::Tags,
        Field::AppliedAt,
        Field::InterviewAt,
        Field::OfferAt,
        Field::RejectedAt,
        Field::CreatedAt,
        Field::UpdatedAt,
    ];

    /// The field's name in files and its column in the `jobs` table (they are the same).
    pub const fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::CompanyName => "company_name",
            Field::JobTitle => "job_title",
            Field::Status => "status",
            Field::Source => "source",
            Field::Location => "location",
            Field::IsRemote => "is_remote",
            Field::JobUrl => "job_url",
            Field::JobDescription => "job_description",
            Field::SalaryRangeMin => "salary_range_min",
            Field::SalaryRangeMax => "salary_range_max",
            Field::AiMatchScore => "ai_match_score",
            Field::AiReasoning => "ai_reasoning",
            Field::Notes => "notes",
            Field::Tags => "tags",
            Field::AppliedAt => "applied_at",
            Field::InterviewAt => "interview_at",
            Field::OfferAt => "offer_at",
            Field::RejectedAt => "rejected_at",
            Field::ScrapedAt => "scraped_at",
            Field::CreatedAt => "created_at",
            Field::UpdatedAt => "updated_at",
        }
    }

    /// Looks a field up by its name.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl serde::Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Field::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown field {name:?}")))
    }
}

/// One value of one field, borrowed from a [`JobRecord`]; what the writers format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Text(&'a str),
    Int(i32),
    Bool(bool),
    Uuid(&'a Uuid),
    Time(&'a DateTime<Utc>),
    Tags(&'a [String]),
}

impl<'a> From<&'a Option<String>> for Value<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().map_or(Value::Null, Value::Text)
    }
}

impl From<Option<i32>> for Value<'_> {
    fn from(v: Option<i32>) -> Self {
        v.map_or(Value::Null, Value::Int)
    }
}

impl<'a> From<&'a Option<DateTime<Utc>>> for Value<'a> {
    fn from(v: &'a Option<DateTime<Utc>>) -> Self {
        v.as_ref().map_or(Value::Null, Value::Time)
    }
}

/// One job, decoded from a row that selected some [`Field`]s. Fields that were not selected
/// keep their default and are never written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobRecord {
    pub id: Uuid,
    pub company_name: String,
    pub job_title: String,
    pub status: String,
    pub source: Option<String>,
    pub location: Option<String>,
    pub is_remote: bool,
    pub job_url: Option<String>,
    pub job_description: Option<String>,
    pub salary_range_min: Option<i32>,
    pub salary_range_max: Option<i32>,
    pub ai_match_score: Option<i32>,
    pub ai_reasoning: Option<String>,
    pub notes: Option<String>,
    pub tags: Vec<String>,
    pub applied_at: Option<DateTime<Utc>>,
    pub interview_at: Option<DateTime<Utc>>,
    pub offer_at: Option<DateTime<Utc>>,
    pub rejected_at: Option<DateTime<Utc>>,
    pub scraped_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl JobRecord {
    /// Decodes a row whose columns are exactly `fields`, in that order.
    pub fn decode(row: &PgRow, fields: &[Field]) -> Result<JobRecord, sqlx::Error> {
        let mut job = JobRecord::default();
        for (i, field) in fields.iter().enumerate() {
            match field {
                Field::Id => job.id = row.try_get(i)?,
                Field::CompanyName => job.company_name = row.try_get(i)?,
                Field::JobTitle => job.job_title = row.try_get(i)?,
                Field::Status => job.status = row.try_get(i)?,
                Field::Source => job.source = row.try_get(i)?,
                Field::Location => job.location = row.try_get(i)?,
                Field::IsRemote => job.is_remote = row.try_get(i)?,
                Field::JobUrl => job.job_url = row.try_get(i)?,
                Field::JobDescription => job.job_description = row.try_get(i)?,
                Field::SalaryRangeMin => job.salary_range_min = row.try_get(i)?,
                Field::SalaryRangeMax => job.salary_range_max = row.try_get(i)?,
                Field::AiMatchScore => job.ai_match_score = row.try_get(i)?,
                Field::AiReasoning => job.ai_reasoning = row.try_get(i)?,
                Field::Notes => job.notes = row.try_get(i)?,
                Field::Tags => job.tags = row.try_get(i)?,
                Field::AppliedAt => job.applied_at = row.try_get(i)?,
                Field::InterviewAt => job.interview_at = row.try_get(i)?,
                Field::OfferAt => job.offer_at = row.try_get(i)?,
                Field::RejectedAt => job.rejected_at = row.try_get(i)?,
                Field::ScrapedAt => job.scraped_at = row.try_get(i)?,
                Field::CreatedAt => job.created_at = row.try_get(i)?,
                Field::UpdatedAt => job.updated_at = row.try_get(i)?,
            }
        }
        Ok(job)
    }

    /// The value of one field.
    pub fn value(&self, field: Field) -> Value<'_> {
        match field {
            Field::Id => Value::Uuid(&self.id),
            Field::CompanyName => Value::Text(&self.company_name),
            Field::JobTitle => Value::Text(&self.job_title),
            Field::Status => Value::Text(&self.status),
            Field::Source => (&self.source).into(),
            Field::Location => (&self.location).into(),
            Field::IsRemote => Value::Bool(self.is_remote),
            Field::JobUrl => (&self.job_url).into(),
            Field::JobDescription => (&self.job_description).into(),
            Field::SalaryRangeMin => self.salary_range_min.into(),
            Field::SalaryRangeMax => self.salary_range_max.into(),
            Field::AiMatchScore => self.ai_match_score.into(),
            Field::AiReasoning => (&self.ai_reasoning).into(),
            Field::Notes => (&self.notes).into(),
            Field::Tags => Value::Tags(&self.tags),
            Field::AppliedAt => (&self.applied_at).into(),
            Field::InterviewAt => (&self.interview_at).into(),
            Field::OfferAt => (&self.offer_at).into(),
            Field::RejectedAt => (&self.rejected_at).into(),
            Field::ScrapedAt => (&self.scraped_at).into(),
            Field::CreatedAt => Value::Time(&self.created_at),
            Field::UpdatedAt => Value::Time(&self.updated_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for f in Field::ALL {
            assert_eq!(Field::from_name(f.name()), Some(f));
        }
        let mut names: Vec<_> = Field::ALL.iter().map(|f| f.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 22);
        assert_eq!(Field::from_name("user_id"), None);
        assert_eq!(Field::from_name("deleted_at"), None);
    }

    #[test]
    fn csv_columns_keep_the_json_order() {
        let positions: Vec<_> = Field::CSV
            .iter()
            .map(|f| Field::ALL.iter().position(|g| g == f).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
    }
}
