from fireact.cli import main
from fireact.data.synthetic import make_world, write_world
from fireact.data.tasks import get_task
from fireact.data.trajectory import read_trajectories


def test_world_is_seeded_and_answers_need_two_searches():
    a, b = make_world(seed=3), make_world(seed=3)
    assert a == b and make_world(seed=4) != a
    p = a.people[0]
    turns = a.expert_turns(p)
    assert [t["action"] for t in turns] == [f"search[{p.name}]", f"search[{p.city}]", f"finish[{a.country_of[p.city]}]"]
    assert a.country_of[p.city] not in a.question(p)["question"]


def test_written_world_is_a_data_dir_with_disjoint_dev(tmp_path, capsys):
    write_world(tmp_path, n_people=30, n_dev=5)
    task = get_task("synthetic")
    dev, train = task.load(tmp_path, "dev"), task.load(tmp_path, "train")
    assert len(dev) == 5 and len(train) == 25
    assert not {e.question for e in dev} & {e.question for e in train}
    experts = read_trajectories(tmp_path / "synthetic/expert_train.jsonl")
    assert [t.question for t in experts] == [e.question for e in train]
    assert (
        main(
            [
                "score",
                str(tmp_path / "synthetic/expert_train.jsonl"),
                "--task",
                "synthetic",
                "--split",
                "train",
                "--data-dir",
                str(tmp_path),
                "--json",
            ]
        )
        == 0
    )
    assert '"em": 1.0' in capsys.readouterr().out
