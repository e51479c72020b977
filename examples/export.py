#!/usr/bin/env python3
"""Creates a background export, waits for it, downloads the file and checks its SHA-256.

    PIPELINE_TOKEN=pex_... examples/export.py [FORMAT] [OUTPUT_DIR]

FORMAT: json, csv (default), ndjson, xlsx or pdf. PIPELINE_URL defaults to
http://127.0.0.1:8080. Needs Python 3.8+ and requests.
"""

import hashlib
import json
import os
import re
import sys
import time
from urllib.parse import urljoin

import requests


class ExportError(Exception):
    pass


def api_error(response):
    """The API's error object ({"error": {"code", "message"}}), or the raw body."""
    try:
        return json.dumps(response.json().get("error", response.json()))
    except ValueError:
        return response.text[:500]


def safe_name(name, fallback):
    """Only the last path component of a file name, never '', '.' or '..'."""
    name = re.split(r"[/\\]", name or "")[-1]
    return name if name not in ("", ".", "..") else fallback


def main():
    base_url = os.environ.get("PIPELINE_URL", "http://127.0.0.1:8080").rstrip("/")
    token = os.environ.get("PIPELINE_TOKEN")
    if not token:
        raise ExportError("PIPELINE_TOKEN is not set (a personal token pex_... or a JWT)")
    fmt = sys.argv[1] if len(sys.argv) > 1 else "csv"
    out_dir = sys.argv[2] if len(sys.argv) > 2 else "."
    if not os.path.isdir(out_dir):
        raise ExportError(f"output directory {out_dir} does not exist")

    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    api.headers["Accept"] = "application/json"

    try:
        response = api.post(f"{base_url}/api/exports", json={"format": fmt}, timeout=30)
        if response.status_code not in (200, 202):
            raise ExportError(f"POST /api/exports answered {response.status_code}: {api_error(response)}")
        export = response.json()
        export_id = export["id"]
        print(f"export {export_id} queued ({fmt})", file=sys.stderr)

        # Poll until the export is finished.
        while export["status"] in ("queued", "running"):
            time.sleep(2)
            response = api.get(f"{base_url}/api/exports/{export_id}", timeout=30)
            if response.status_code != 200:
                raise ExportError(
                    f"GET /api/exports/{export_id} answered {response.status_code}: {api_error(response)}"
                )
            export = response.json()
            done = export["progress"]["rows_done"] or 0
            print(f"  {export['status']}: {done} rows", file=sys.stderr)
        if export["status"] != "succeeded":
            raise ExportError(f"export {export_id} is {export['status']}: {json.dumps(export['error'])}")

        # The download endpoint answers 302 to a presigned storage URL. The redirect is
        # followed by hand, with a plain request, so that the token only ever goes to the API.
        response = api.get(f"{base_url}/api/exports/{export_id}/download", allow_redirects=False, timeout=30)
        if response.status_code not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
            raise ExportError(
                f"GET /api/exports/{export_id}/download answered {response.status_code}: {api_error(response)}"
            )
        location = urljoin(f"{base_url}/", response.headers["Location"])

        with requests.get(location, stream=True, timeout=60) as download:
            if download.status_code != 200:
                raise ExportError(f"the download from storage answered {download.status_code}")
            # Saved under the name the storage sends in Content-Disposition, else the
            # export's file_name.
            match = re.search(r'filename="?([^";]+)"?', download.headers.get("Content-Disposition", ""))
            name = safe_name(match.group(1) if match else export["file_name"], export_id)
            path = os.path.join(out_dir, name)
            part = os.path.join(out_dir, f".{export_id}.part")
            digest = hashlib.sha256()
            try:
                with open(part, "wb") as f:
                    # The bytes as stored (a .gz stays gzipped), whatever the headers say.
                    for chunk in download.raw.stream(1 << 16, decode_content=False):
                        digest.update(chunk)
                        f.write(chunk)
                if export.get("sha256") and digest.hexdigest() != export["sha256"]:
                    raise ExportError(
                        f"SHA-256 mismatch: expected {export['sha256']}, got {digest.hexdigest()}"
                    )
                os.replace(part, path)
            finally:
                if os.path.exists(part):
                    os.remove(part)
    except requests.RequestException as e:
        raise ExportError(f"request failed: {e}") from e

    print(path)


if __name__ == "__main__":
    try:
        main()
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
