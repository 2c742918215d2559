"""Which Fast-DDS profiles carry camera frames: the node's start-up check (lane_seg_ros/fastdds.py)."""

from pathlib import Path

from lane_seg_ros.fastdds import camera_frames_problem, packaged_profile, profile_file, shared_memory_segment

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "config" / "fastdds_shm.xml"


def profile(tmp_path: Path, segment: str | None) -> Path:
    descriptor = "" if segment is None else (
        f"<transport_descriptor><transport_id>shm</transport_id><type>SHM</type>{segment}</transport_descriptor>")
    path = tmp_path / "profile.xml"
    path.write_text(f'<dds xmlns="http://www.eprosima.com"><profiles><transport_descriptors>{descriptor}'
                    "<transport_descriptor><transport_id>udp</transport_id><type>UDPv4</type></transport_descriptor>"
                    "</transport_descriptors></profiles></dds>")
    return path


def test_the_shipped_profile_carries_camera_frames(tmp_path):
    assert shared_memory_segment(SHIPPED) == 16 * 2**20
    assert camera_frames_problem({"FASTDDS_DEFAULT_PROFILES_FILE": str(SHIPPED)}, tmp_path) is None
    assert Path(packaged_profile()).is_file()


def test_no_profile_a_missing_one_or_a_small_segment_is_a_problem(tmp_path):
    assert "no Fast-DDS profile is loaded" in camera_frames_problem({}, tmp_path)
    missing = tmp_path / "nope.xml"
    assert f"{missing} (FASTDDS_DEFAULT_PROFILES_FILE) does not exist" in camera_frames_problem(
        {"FASTDDS_DEFAULT_PROFILES_FILE": str(missing)}, tmp_path)
    small = profile(tmp_path, "<segment_size>1048576</segment_size>")
    assert "declares an SHM segment of 1.0 MiB (camera frames need 4 MiB)" in camera_frames_problem(
        {"FASTDDS_DEFAULT_PROFILES_FILE": str(small)}, tmp_path)
    udp_only = profile(tmp_path, None)
    assert "declares no SHM transport" in camera_frames_problem({"FASTDDS_DEFAULT_PROFILES_FILE": str(udp_only)},
                                                                tmp_path)
    default_size = profile(tmp_path, "")  # an SHM transport without segment_size: Fast-DDS's 512 KB
    assert "0.5 MiB" in camera_frames_problem({"FASTDDS_DEFAULT_PROFILES_FILE": str(default_size)}, tmp_path)


def test_the_legacy_variable_and_the_working_folder_file_count_too(tmp_path):
    assert profile_file({"FASTRTPS_DEFAULT_PROFILES_FILE": str(SHIPPED)}, tmp_path) == SHIPPED
    (tmp_path / "DEFAULT_FASTDDS_PROFILES.xml").write_text(SHIPPED.read_text())
    assert profile_file({}, tmp_path) == tmp_path / "DEFAULT_FASTDDS_PROFILES.xml"
    assert camera_frames_problem({}, tmp_path) is None
