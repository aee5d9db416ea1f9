from pathlib import Path

from segloop.run_environment import cpu_model, package_versions, run_environment


def test_cpu_model_reads_the_first_model_name(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
        "model name\t: AMD EPYC\n\nprocessor\t: 1\ncpu family\t: 25\nmodel name\t: other\n"
    )
    assert cpu_model(cpuinfo) == "AMD EPYC (family 26, model 2)"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n")
    assert cpu_model(cpuinfo) == "Some CPU"


def test_cpu_model_without_cpuinfo_falls_back_to_platform(tmp_path: Path) -> None:
    assert cpu_model(tmp_path / "missing") != ""
    empty = tmp_path / "cpuinfo"
    empty.write_text("processor\t: 0\nmodel name\t:\n")
    assert cpu_model(empty) != ""


def test_package_versions_names_missing_packages_none() -> None:
    versions = package_versions(("numpy", "segloop-no-such-package"))
    assert versions["segloop-no-such-package"] is None
    assert versions["numpy"] is not None and versions["numpy"][0].isdigit()


def test_run_environment_lists_the_result_packages() -> None:
    environment = run_environment()
    packages = environment["packages"]
    assert isinstance(packages, dict) and packages["opencv-python-headless"] is not None
    assert str(environment["python"]).count(".") == 2
