-- Which attempt of the email task holds the sending claim: a later attempt (the queue gave
-- the task to another worker because the holder stopped beating) may take the claim over at
-- once instead of waiting for it to age.
ALTER TABLE exports ADD COLUMN email_claim_attempt integer;
