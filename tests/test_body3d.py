"""body3d: the Anny fit against the synthetic truth, gaps in the keypoints, bad backends."""

import logging

import numpy as np
import pytest
from conftest import real_video, truth_in_crop

from posetransfer import body3d, body3d_smpl, cache, frames, pose2d
from posetransfer.body3d import Body3dParams, camera_intrinsics, usable_frames
from posetransfer.errors import ConfigError
from posetransfer.keypoints import coco23_to_body25


@pytest.fixture
def synthetic_fit(synthetic_body3d):
    return synthetic_body3d


def test_intrinsics_follow_the_crop():
    attrs = {"crop_box": [100, -20, 400], "source_size": [640, 480], "resolution": 200}
    K = camera_intrinsics(attrs, focal=0.8)
    assert K[0, 0] == pytest.approx(0.8 * 640 * 0.5)
    assert (K[0, 2], K[1, 2]) == pytest.approx(((320 - 100) * 0.5, (240 + 20) * 0.5))


def test_fit_threads_are_set_for_the_fit_and_restored():
    import torch

    before = torch.get_num_threads()
    with body3d.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with body3d.torch_threads(0):  # 0: torch's own setting
        assert torch.get_num_threads() == before


def test_short_gaps_are_bridged_and_long_gaps_are_not():
    weights = np.ones((20, 23))
    weights[3:5] = 0  # a 2-frame gap
    weights[8:15] = 0  # a 7-frame gap
    constrained, fitted = usable_frames(weights, max_gap=3)
    assert list(np.flatnonzero(~constrained)) == [3, 4, *range(8, 15)]
    assert list(np.flatnonzero(~fitted)) == list(range(8, 15))


def test_synthetic_fit_reprojects_onto_the_true_keypoints(synthetic_fit, synthetic_clip, synthetic_frames):
    truth, _ = truth_in_crop(synthetic_clip[1], synthetic_frames)
    with cache.open_cache(synthetic_fit, "body3d") as fit:
        joints = coco23_to_body25(fit.read("joints2d"))
        assert fit.read("fitted").all()
        residual = fit.read("residual_px")
        vertices, phenotype = fit.read("vertices"), fit.read("phenotype")
    visible = truth[..., 2] > 0.5
    error = np.linalg.norm(joints - truth[..., :2], axis=-1)[visible].mean()
    # The fit follows MediaPipe's keypoints (2.1 px from the truth); measured 2.0 px from the
    # truth and 1.2 px from MediaPipe on 48 frames. 4 px at 256 px leaves room for other seeds.
    assert error < 4.0, f"fitted joints {error:.2f} px from the truth"
    assert np.nanmean(residual) < 3.0
    assert vertices.shape[1:] == (13718, 3) and np.isfinite(vertices).all()
    assert vertices[..., 2].min() > 0.5  # in front of the camera
    assert ((phenotype > 0) & (phenotype < 1)).all()
    assert synthetic_fit.with_suffix(".mp4").stat().st_size > 5_000


def test_joints_without_skinning_equal_annys_forward(anny_cache_dir):
    """AnnyJoints (the fit's forward pass) gives Anny's regressed joints and their gradients."""
    import torch

    rng = np.random.default_rng(1)
    translation = rng.normal(0, 1, (3, 3)) + np.array([0, 0, 3])
    fit = body3d.body_model_fit(Body3dParams(), anny_cache_dir, 3, translation, "cpu")
    with torch.no_grad():
        fit.phenotype.copy_(torch.as_tensor(rng.normal(0, 1.5, 6)))
        fit.root.add_(torch.as_tensor(rng.normal(0, 0.5, (3, 3))))
        fit.rotations.copy_(torch.as_tensor(rng.normal(0, 0.6, fit.rotations.shape)))
    fast = fit.joints()
    mesh = fit.posed()["keypoints"]
    assert fast.shape == mesh.shape == (3, 23, 3)
    assert (fast - mesh).abs().max().item() < 1e-9  # metres: the same function, not an approximation
    gradients = []
    for joints in (fast, mesh):
        fit.zero_grad()
        (joints * torch.linspace(-1, 1, 23)[:, None]).sum().backward()
        gradients.append([p.grad.clone() for p in (fit.phenotype, fit.root, fit.translation, fit.rotations)])
    for fast_grad, mesh_grad in zip(*gradients, strict=True):
        assert torch.allclose(fast_grad, mesh_grad, rtol=1e-7, atol=1e-9)


def test_fast_fit_is_as_accurate_as_the_mesh_path(
    synthetic_pose2d, synthetic_frames, synthetic_clip, anny_cache_dir
):
    """The fit through AnnyJoints lands where the old whole-mesh fit lands, against the truth."""
    truth, _ = truth_in_crop(synthetic_clip[1], synthetic_frames)
    with cache.open_cache(synthetic_pose2d) as pose, cache.open_cache(synthetic_frames) as cached:
        keypoints, world, valid = pose.read("keypoints"), pose.read("world_landmarks"), pose.read("valid")
        attrs = {key: cached.attrs[key] for key in ("crop_box", "source_size", "resolution")}
    frames_used = slice(0, 3)  # the mesh path costs ~20 ms per frame and step here
    K = camera_intrinsics(attrs, focal=0.8)
    quick = Body3dParams(root_iterations=10, iterations=30)
    inputs = (keypoints[frames_used], world[frames_used], valid[frames_used], K, 256, quick, anny_cache_dir)
    fast = body3d.fit(*inputs, "cpu")
    mesh = body3d.fit(*inputs, "cpu", mesh_joints=True)
    visible = truth[frames_used, :, 2] > 0.5

    def truth_error(result):
        joints = coco23_to_body25(result["joints2d"])
        return np.linalg.norm(joints[..., :2] - truth[frames_used, :, :2], axis=-1)[visible].mean()

    # Same energy, same steps: only rounding differs, so 0.05 px at 256 px and 0.5 mm are margins
    # of rounding, not of approximation.
    assert abs(truth_error(fast) - truth_error(mesh)) < 0.05, (truth_error(fast), truth_error(mesh))
    assert np.abs(fast["joints2d"] - mesh["joints2d"]).max() < 0.05
    assert np.abs(fast["vertices"] - mesh["vertices"]).max() < 5e-4
    assert np.abs(fast["phenotype"] - mesh["phenotype"]).max() < 1e-3


def test_same_input_gives_a_byte_identical_cache(
    synthetic_pose2d, synthetic_frames, anny_cache_dir, tmp_path
):
    quick = Body3dParams(root_iterations=5, iterations=10)
    for name in ("a.h5", "b.h5"):
        body3d.run(synthetic_pose2d, synthetic_frames, tmp_path / name, quick, anny_cache_dir, "cpu")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_frames_without_keypoints_are_interpolated_or_not_fitted(
    synthetic_pose2d, synthetic_frames, anny_cache_dir, tmp_path, caplog
):
    with cache.open_cache(synthetic_pose2d) as cached:
        arrays = {name: cached.read(name) for name in cache.SPECS["pose2d"].datasets}
        attrs = {key: cached.attrs[key] for key in cache.SPECS["pose2d"].attrs}
    arrays["valid"][5:8] = False
    edited = tmp_path / "pose2d.h5"
    with cache.write_cache(edited, "pose2d", {"test": 1}, "") as writer:
        for name, array in arrays.items():
            writer.array(name, array)
        writer.attrs.update(attrs)
    quick = Body3dParams(root_iterations=10, iterations=20, max_gap=2)
    with caplog.at_level(logging.WARNING):
        body3d.run(edited, synthetic_frames, tmp_path / "fit.h5", quick, anny_cache_dir, "cpu")
    assert "3 frames in long gaps not fitted: 5-7" in caplog.text
    with cache.open_cache(tmp_path / "fit.h5") as fit:
        assert list(np.flatnonzero(~fit.read("fitted"))) == [5, 6, 7]
        assert np.isnan(fit.read("residual_px")[5:8]).all()


def test_smplx_without_model_files_names_the_key(synthetic_pose2d, synthetic_frames, tmp_path):
    params = Body3dParams(backend="smplx", smplx_model_dir=str(tmp_path / "smplx"))
    with pytest.raises(ConfigError, match=r"body3d\.smplx_model_dir: .*smplx does not exist"):
        body3d.run(synthetic_pose2d, synthetic_frames, tmp_path / "fit.h5", params, "unused")
    assert not (tmp_path / "fit.h5").exists()


def test_real_clip_is_fitted_on_every_frame(anny_cache_dir, tmp_path):
    video = real_video("squats_c.mp4")
    frames_h5, pose_h5, fit_h5 = tmp_path / "frames.h5", tmp_path / "pose.h5", tmp_path / "fit.h5"
    frames.run(video, frames_h5, tmp_path / "f.png", frames.FramesParams(resolution=128))
    pose2d.run(frames_h5, pose_h5, tmp_path / "p.mp4", pose2d.Pose2dParams())
    body3d.run(pose_h5, frames_h5, fit_h5, Body3dParams(), anny_cache_dir, "cpu")
    with cache.open_cache(fit_h5) as fit:
        assert fit.read("fitted").mean() == 1.0
        residual = np.nanmean(fit.read("residual_px"))  # px at 128 px
    # Real keypoints fit Anny's regressor less well than synthetic ones: allow 2.5% of the frame.
    assert residual < 3.2, f"mean reprojection error {residual:.2f} px at 128 px"


# SMPL's kinematic tree and rough rest joint positions (metres, Y up, facing +Z), for a model
# file in SMPL's format made here: SMPL's own files are licence-gated and cannot ship.
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
SMPL_JOINTS = np.array([
    (0, 0, 0), (0.07, -0.09, 0), (-0.07, -0.09, 0), (0, 0.11, 0), (0.1, -0.47, 0), (-0.1, -0.47, 0),
    (0, 0.25, 0), (0.09, -0.87, -0.02), (-0.09, -0.87, -0.02), (0, 0.3, 0), (0.11, -0.93, 0.1),
    (-0.11, -0.93, 0.1), (0, 0.52, 0), (0.07, 0.42, 0), (-0.07, 0.42, 0), (0, 0.62, 0.03),
    (0.17, 0.45, 0), (-0.17, 0.45, 0), (0.43, 0.42, 0), (-0.43, 0.42, 0), (0.68, 0.43, 0),
    (-0.68, 0.43, 0), (0.76, 0.43, 0), (-0.76, 0.43, 0),
])  # fmt: skip


def write_smpl_format_model(path):
    """A body in SMPL's file format (6890 vertices, 24 joints): a tube along every bone."""
    import pickle

    count, rings, around = 6890, 13, 23  # 23 bones x 13 rings x 23 points = 6877 vertices + 13
    vertices, weights, faces = [], [], []
    for child, parent in enumerate(SMPL_PARENTS):
        if parent < 0:
            continue
        start, end = SMPL_JOINTS[parent], SMPL_JOINTS[child]
        axis = end - start
        normal = np.cross(axis, [0.3, 0.2, 1.0])
        normal /= np.linalg.norm(normal)
        binormal = np.cross(axis / np.linalg.norm(axis), normal)
        base = len(vertices)
        for ring in range(rings):
            for k in range(around):
                angle = 2 * np.pi * k / around
                offset = 0.04 * (np.cos(angle) * normal + np.sin(angle) * binormal)
                vertices.append(start + axis * ring / (rings - 1) + offset)
                weights.append(parent)
        for ring in range(rings - 1):
            for k in range(around):
                a, b = base + ring * around + k, base + ring * around + (k + 1) % around
                faces += [(a, b, a + around), (b, b + around, a + around)]
    while len(vertices) < count:  # the head's top
        vertices.append(SMPL_JOINTS[15] + [0, 0.1, 0])
        weights.append(15)
    v_template = np.asarray(vertices)
    regressor = np.zeros((24, count))
    for joint in range(24):  # each joint: the mean of the first ring of a bone starting there
        near = np.linalg.norm(v_template - SMPL_JOINTS[joint], axis=1) < 0.05
        regressor[joint, near] = 1 / max(near.sum(), 1)
        if not near.any():
            regressor[joint, np.argmin(np.linalg.norm(v_template - SMPL_JOINTS[joint], axis=1))] = 1
    shapedirs = np.zeros((count, 3, 10))
    shapedirs[:, 1, 0] = 0.1 * v_template[:, 1]  # beta 0: taller
    shapedirs[:, 0, 1] = 0.1 * v_template[:, 0]  # beta 1: wider
    model = {
        "v_template": v_template,
        "f": np.asarray(faces, dtype=np.int64),
        "weights": np.eye(24)[weights],
        "J_regressor": regressor,
        "kintree_table": np.stack([[2**32 - 1, *SMPL_PARENTS[1:]], np.arange(24)]),
        "shapedirs": shapedirs,
        "posedirs": np.zeros((count, 3, 207)),
    }
    with open(path, "wb") as handle:
        pickle.dump(model, handle)
    return path


def test_smplx_backend_fits_an_smpl_format_model(tmp_path):
    """The smplx backend recovers a known SMPL-format body from its own projected keypoints."""
    import smplx
    import torch

    from posetransfer.keypoints import coco23_to_body25

    model_file = write_smpl_format_model(tmp_path / "SMPL_NEUTRAL.pkl")
    truth = smplx.SMPL(model_path=str(model_file), dtype=torch.float64)
    count = 6
    rng = np.random.default_rng(0)
    pose = torch.as_tensor(rng.normal(0, 0.15, (count, 69)))
    root = torch.as_tensor(np.tile([np.pi, 0, 0], (count, 1)))  # facing the camera
    with torch.no_grad():
        betas = torch.tensor([[0.5, -0.3] + [0.0] * 8], dtype=torch.float64).expand(count, -1)
        transl = torch.tensor([[0.0, 0.1, 3.0]], dtype=torch.float64).expand(count, -1)
        output = truth(betas=betas, body_pose=pose, global_orient=root, transl=transl)
    K = np.array([[200.0, 0, 128], [0, 200.0, 128], [0, 0, 1]])
    joints = output.joints[:, body3d_smpl.SMPL_COCO23].numpy()
    pixels = joints[..., :2] / joints[..., 2:] * 200 + 128
    keypoints25 = coco23_to_body25(np.concatenate([pixels, np.ones((count, 23, 1))], axis=-1))
    world = np.zeros((count, 33, 4))  # no world landmarks
    params = Body3dParams(backend="smplx", smplx_model_dir=str(tmp_path), root_iterations=40, iterations=150)
    result = body3d.fit(keypoints25, world, np.ones(count, bool), K, 256, params, "unused", "cpu")
    assert result["residual_px"].max() < 2.0, result["residual_px"]
    assert result["vertices"].shape == (count, 6890, 3) and result["deltas"].shape == (count, 24, 4, 4)
    assert result["faces"].shape[1] == 3 and result["phenotype"].shape == (10,)


def test_smplx_backend_names_a_missing_model_file(tmp_path):
    (tmp_path / "models").mkdir()
    params = Body3dParams(backend="smplx", smplx_model_dir=str(tmp_path / "models"))
    with pytest.raises(
        ConfigError, match=r"models/SMPL_NEUTRAL\.pkl: body3d\.smplx_model_dir: no SMPL_NEUTRAL"
    ):
        body3d_smpl.load_smpl(params)
    (tmp_path / "models" / "SMPL_NEUTRAL.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match=r"cannot load this SMPL model"):
        body3d_smpl.load_smpl(params)
