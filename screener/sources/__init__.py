"""Where candidates' facts come from: tables typed by hand and FHIR R4 patient records.

`readers` streams candidate records out of CSV, JSON Lines, JSON and YAML; `csvrows` scans
CSV records with their row numbers, where a broken row stays one row.

`fhir` reads Bundles and Bulk Data exports and groups their resources by patient; `mapping`
loads the site's declarations of how each fact is read from FHIR (YAML data, checked with
file:line:col errors); `extract` applies them to one patient's resources and says where each
value came from; `merge` joins several sources into one record per candidate.
"""
