"""A scripted teacher for company-db behind an OpenAI-compatible endpoint (standing in for GPT-4 behind
`fireact serve --upstream`): from the conversation so far it makes the next call the company_db
teacher makes (list the tables, describe one, run the example's queries, divide), then answers."""

from __future__ import annotations

import json
import re
import time
import uuid

from fastapi import FastAPI, Request

from fireact.env.company_db import load_environment

ROWS = {r["question"]: r for split in ("train", "test") for r in load_environment(split).rows().values()}


def next_message(messages: list[dict]) -> dict:
    question = next(m["content"] for m in messages if m["role"] == "user")
    row = ROWS[question if isinstance(question, str) else question[0]["text"]]
    results = [m["content"] for m in messages if m["role"] == "tool"]
    table = "departments" if row["kind"] == "per_employee" else "employees"
    plan = [("I should see which tables the database has.", "list_tables", {}),
            (f"The {table} table should have what I need. Let me see its columns.", "describe_table",
             {"table_name": table})]  # fmt: skip
    plan += [("Now I can query it." if i == 0 else "Now I need the number of those employees.", "read_query",
              {"query": q}) for i, q in enumerate(row["queries"])]  # fmt: skip
    if row["kind"] in ("per_employee", "average") and len(results) == len(plan):
        total, count = (_value(r) for r in results[2:4])
        plan.append((f"The total is {total} and there are {count} employees. I divide them.", "divide",
                     {"numerator": total, "denominator": count}))  # fmt: skip
    if len(results) < len(plan):
        thought, name, arguments = plan[len(results)]
        call = {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)}}  # fmt: skip
        return {"role": "assistant", "content": thought, "tool_calls": [call]}
    return {"role": "assistant", "content": f"The answer is {row['answer']}."}


def _value(result: str) -> int:
    """The number in a one-cell query result (`[{'COUNT(*)': 12}]`, however the SDK wraps it)."""
    m = re.search(r"'[^']*':\s*(-?\d+(?:\.\d+)?)", result)
    return int(float(m.group(1))) if m else 0


app = FastAPI(title="company-db scripted teacher")


@app.post("/v1/chat/completions")
async def chat(request: Request) -> dict:
    body = await request.json()
    message = next_message(body["messages"])
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or "teacher", "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}  # fmt: skip
