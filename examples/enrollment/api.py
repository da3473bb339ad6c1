"""The course-enrollment API: `POST /enrollments` stores the enrollment (the critical write),
enqueues the welcome email and answers at once.

    uvicorn api:api               # in this folder; and a worker: conveyor worker tasks:app
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing

from fastapi import FastAPI
from pydantic import BaseModel
from tasks import send_welcome

DATABASE = os.environ.get("ENROLLMENT_DATABASE", "enrollments.db")

api = FastAPI(title="Enrollments")


class EnrollmentIn(BaseModel):
    name: str
    email: str
    course: str


class EnrollmentOut(BaseModel):
    id: int
    job_id: str


def _store(enrollment: EnrollmentIn) -> int:
    with closing(sqlite3.connect(DATABASE)) as db, db:
        db.execute("CREATE TABLE IF NOT EXISTS enrollments (id INTEGER PRIMARY KEY, "
                   "name TEXT, email TEXT, course TEXT)")
        cursor = db.execute("INSERT INTO enrollments (name, email, course) VALUES (?, ?, ?)",
                            (enrollment.name, enrollment.email, enrollment.course))
        assert cursor.lastrowid is not None
        return cursor.lastrowid


@api.post("/enrollments", status_code=201, response_model=EnrollmentOut)
async def enroll(enrollment: EnrollmentIn) -> EnrollmentOut:
    """Enroll a student; the welcome email goes out from a worker, later."""
    enrollment_id = _store(enrollment)
    job = await send_welcome.aenqueue(enrollment_id, enrollment.email, enrollment.name,
                                      enrollment.course)
    return EnrollmentOut(id=enrollment_id, job_id=job.id)
